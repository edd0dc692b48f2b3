//! Seeded world generators: the benchmark world (a large tenant) and small random worlds for
//! property tests ([`small_world`]).
//!
//! Owns the worlds' model text, their tuples and sample queries, shared by the criterion bench,
//! the `rebac-report` binary and the property tests. It must not depend on a random-number
//! crate: a small xorshift keeps it reproducible from the seed alone.
//!
//! Shape: users; groups three levels deep (top groups contain `mid#member`, mid groups
//! contain `leaf#member`, leaf groups contain users); folders five levels deep (`parent`);
//! documents with a `parent` folder and direct viewers (users and `group#member`). One extra
//! user is a viewer of one top-level folder, which reaches about 10,000 documents.

use crate::tuple::{ObjectRef, Tuple, User};

/// The world's model.
pub const MODEL: &str = "model
  schema 1.1

type user

type group
  relations
    define member: [user, group#member]

type folder
  relations
    define parent: [folder]
    define viewer: [user, group#member] or viewer from parent

type document
  relations
    define parent: [folder]
    define viewer: [user, group#member] or viewer from parent
";

/// Sizes of the world.
#[derive(Debug, Clone)]
pub struct Params {
    /// Seed of the generator.
    pub seed: u64,
    /// Total tuples (the documents' direct viewers fill up to this).
    pub tuples: usize,
    /// Users.
    pub users: u32,
    /// Top-level folders (each has 4 children, four levels further down).
    pub root_folders: u32,
    /// Documents per leaf folder.
    pub documents_per_leaf: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            seed: 42,
            tuples: 1_000_000,
            users: 20_000,
            root_folders: 20,
            documents_per_leaf: 39,
        }
    }
}

/// A generated world.
#[derive(Debug, Clone)]
pub struct World {
    /// Model DSL text.
    pub model: String,
    /// Tuples.
    pub tuples: Vec<Tuple>,
    /// Sample checks: (user, document), about half allowed.
    pub checks: Vec<(User, ObjectRef)>,
    /// A user who can view about 10,000 documents (for list objects).
    pub list_user: User,
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n.max(1))) as u32
    }
}

fn obj(t: &str, id: String) -> ObjectRef {
    ObjectRef {
        object_type: t.to_owned(),
        id,
    }
}

fn tuple(object: ObjectRef, relation: &str, user: User) -> Tuple {
    Tuple {
        object,
        relation: relation.to_owned(),
        user,
        condition: None,
    }
}

/// Generates the world.
pub fn world(params: &Params) -> World {
    let mut rng = XorShift(params.seed.max(1));
    let mut tuples = Vec::with_capacity(params.tuples);
    let user = |i: u32| User::Object(obj("user", format!("u{i}")));
    let (top, mid, leaf) = (10u32, 100u32, 1000u32);
    for m in 0..mid {
        tuples.push(tuple(
            obj("group", format!("top{}", m % top)),
            "member",
            User::Userset {
                object: obj("group", format!("mid{m}")),
                relation: "member".into(),
            },
        ));
    }
    for l in 0..leaf {
        tuples.push(tuple(
            obj("group", format!("mid{}", l % mid)),
            "member",
            User::Userset {
                object: obj("group", format!("leaf{l}")),
                relation: "member".into(),
            },
        ));
    }
    for u in 0..params.users {
        for _ in 0..2 {
            tuples.push(tuple(
                obj("group", format!("leaf{}", rng.below(leaf))),
                "member",
                user(u),
            ));
        }
    }
    let group_userset = |rng: &mut XorShift| {
        // Mostly leaf groups, some mid, few top.
        let roll = rng.below(100);
        let id = if roll < 85 {
            format!("leaf{}", rng.below(leaf))
        } else if roll < 97 {
            format!("mid{}", rng.below(mid))
        } else {
            format!("top{}", rng.below(top))
        };
        User::Userset {
            object: obj("group", id),
            relation: "member".into(),
        }
    };
    // Folders: level 0 roots, 4 children each, 5 levels.
    let mut levels: Vec<Vec<String>> =
        vec![(0..params.root_folders).map(|i| format!("f{i}")).collect()];
    for _ in 1..5 {
        let mut next = Vec::new();
        for parent in levels.last().map(Vec::as_slice).unwrap_or_default() {
            for c in 0..4 {
                let child = format!("{parent}.{c}");
                tuples.push(tuple(
                    obj("folder", child.clone()),
                    "parent",
                    User::Object(obj("folder", parent.clone())),
                ));
                next.push(child);
            }
        }
        levels.push(next);
    }
    for level in &levels {
        for folder in level {
            let viewer = if rng.below(2) == 0 {
                group_userset(&mut rng)
            } else {
                user(rng.below(params.users))
            };
            tuples.push(tuple(obj("folder", folder.clone()), "viewer", viewer));
        }
    }
    let list_user = User::Object(obj("user", "lister".into()));
    tuples.push(tuple(
        obj("folder", "f0".into()),
        "viewer",
        list_user.clone(),
    ));
    // Documents in leaf folders.
    let leaves = levels.last().cloned().unwrap_or_default();
    let mut documents = Vec::new();
    for folder in &leaves {
        for _ in 0..params.documents_per_leaf {
            let id = format!("d{}", documents.len());
            tuples.push(tuple(
                obj("document", id.clone()),
                "parent",
                User::Object(obj("folder", folder.clone())),
            ));
            documents.push(id);
        }
    }
    // Direct viewers until the budget is used.
    let mut i = 0usize;
    while tuples.len() < params.tuples && !documents.is_empty() {
        let doc = &documents[i % documents.len()];
        let viewer = if rng.below(4) == 0 {
            group_userset(&mut rng)
        } else {
            user(rng.below(params.users))
        };
        tuples.push(tuple(obj("document", doc.clone()), "viewer", viewer));
        i += 1;
    }
    let mut checks = Vec::new();
    for _ in 0..10_000 {
        let doc = documents
            .get(rng.below(documents.len() as u32) as usize)
            .cloned()
            .unwrap_or_default();
        checks.push((user(rng.below(params.users)), obj("document", doc)));
    }
    World {
        model: MODEL.to_owned(),
        tuples,
        checks,
        list_user,
    }
}

/// A small random world for property tests: a model, tuples, and what to ask about.
#[derive(Debug, Clone)]
pub struct SmallWorld {
    /// Model DSL text.
    pub model: String,
    /// Tuples (each allowed by the model).
    pub tuples: Vec<Tuple>,
    /// Users to ask about (`user:u0` ...; the last one is named in no tuple).
    pub users: Vec<User>,
    /// Every object of every type.
    pub objects: Vec<ObjectRef>,
    /// Every `(type, relation)` of the model other than the tuplesets.
    pub relations: Vec<(String, String)>,
}

/// Relations defined per type of [`small_world`]: `t0` defines `r0`..`r3`, `t1` `r0`..`r2`,
/// `t2` `r0`..`r1`, so that `x from parent` often reaches types without `x`.
const SMALL_RELATIONS: [usize; 3] = [4, 3, 2];
const SMALL_OBJECTS: usize = 3;
const SMALL_USERS: usize = 3;

/// A random world from `seed`: user type `user`, object types `t0`..`t2` each with
/// `define parent: [t0, t1, t2]` and relations `rI: [direct] or E` or `rI: [direct] but not E`,
/// where the direct types are `user` plus maybe `user:*` and usersets `tJ#rY`, and `E` nests
/// `or`, `and` and `but not` over `rX` (a relation defined before `rI` on the same type, so
/// computed relations never loop) and `rX from parent`. Tuples pick parents (self-parents and
/// loops included) and direct users at random, so userset and parent cycles are common, and
/// many pass through `but not`.
pub fn small_world(seed: u64) -> SmallWorld {
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).max(1));
    let chance = |rng: &mut XorShift, percent: u32| rng.below(100) < percent;
    let mut model = String::from("model\n  schema 1.1\ntype user\n");
    // Per (type, relation): the direct types as (type, relation or "" or "*").
    let mut direct: Vec<Vec<Vec<(usize, String)>>> = Vec::new();
    for (t, &count) in SMALL_RELATIONS.iter().enumerate() {
        model.push_str(&format!(
            "type t{t}\n  relations\n    define parent: [t0, t1, t2]\n"
        ));
        let mut per_type = Vec::new();
        for r in 0..count {
            let mut types: Vec<(usize, String)> = vec![(usize::MAX, String::new())];
            if chance(&mut rng, 25) {
                types.push((usize::MAX, "*".to_owned()));
            }
            for _ in 0..rng.below(3) {
                let j = rng.below(3) as usize;
                let y = rng.below(SMALL_RELATIONS[j] as u32) as usize;
                let entry = (j, format!("r{y}"));
                if !types.contains(&entry) {
                    types.push(entry);
                }
            }
            let list: Vec<String> = types
                .iter()
                .map(|(j, rel)| match (rel.as_str(), *j) {
                    ("", _) => "user".to_owned(),
                    ("*", _) => "user:*".to_owned(),
                    (rel, j) => format!("t{j}#{rel}"),
                })
                .collect();
            let expression = small_expression(&mut rng, r, 2);
            let word = if chance(&mut rng, 40) {
                "but not"
            } else {
                "or"
            };
            model.push_str(&format!(
                "    define r{r}: [{}] {word} {expression}\n",
                list.join(", ")
            ));
            per_type.push(types);
        }
        direct.push(per_type);
    }
    let object = |t: usize, i: usize| ObjectRef {
        object_type: format!("t{t}"),
        id: format!("o{i}"),
    };
    let users: Vec<User> = (0..=SMALL_USERS)
        .map(|u| User::Object(obj("user", format!("u{u}"))))
        .collect();
    let mut tuples = Vec::new();
    let mut objects = Vec::new();
    let mut relations = Vec::new();
    for (t, per_type) in direct.iter().enumerate() {
        for (r, _) in per_type.iter().enumerate() {
            relations.push((format!("t{t}"), format!("r{r}")));
        }
        for i in 0..SMALL_OBJECTS {
            objects.push(object(t, i));
            for j in 0..3 {
                for k in 0..SMALL_OBJECTS {
                    if chance(&mut rng, 12) {
                        tuples.push(tuple(object(t, i), "parent", User::Object(object(j, k))));
                    }
                }
            }
            for (r, types) in per_type.iter().enumerate() {
                let relation = format!("r{r}");
                for (j, rel) in types {
                    match rel.as_str() {
                        "" => {
                            for user in users.iter().take(SMALL_USERS) {
                                if chance(&mut rng, 20) {
                                    tuples.push(tuple(object(t, i), &relation, user.clone()));
                                }
                            }
                        }
                        "*" => {
                            if chance(&mut rng, 15) {
                                tuples.push(tuple(
                                    object(t, i),
                                    &relation,
                                    User::Wildcard("user".into()),
                                ));
                            }
                        }
                        rel => {
                            for k in 0..SMALL_OBJECTS {
                                if (*j, k, rel) == (t, i, relation.as_str()) {
                                    // `x#r@x#r` holds without a tuple; it cannot be stored.
                                    continue;
                                }
                                if chance(&mut rng, 15) {
                                    tuples.push(tuple(
                                        object(t, i),
                                        &relation,
                                        User::Userset {
                                            object: object(*j, k),
                                            relation: rel.to_owned(),
                                        },
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    SmallWorld {
        model,
        tuples,
        users,
        objects,
        relations,
    }
}

/// A random operand for relation `r{own}`: `rX` with `X < own`, `rX from parent`, or an
/// `or` / `and` / `but not` of such, nested at most `depth` levels.
fn small_expression(rng: &mut XorShift, own: usize, depth: u32) -> String {
    let leaf = |rng: &mut XorShift| {
        if own > 0 && rng.below(2) == 0 {
            format!("r{}", rng.below(own as u32))
        } else {
            format!("r{} from parent", rng.below(4))
        }
    };
    if depth == 0 || rng.below(3) == 0 {
        return leaf(rng);
    }
    let a = small_expression(rng, own, depth - 1);
    let b = small_expression(rng, own, depth - 1);
    match rng.below(3) {
        0 => format!("({a} or {b})"),
        1 => format!("({a} and {b})"),
        _ => format!("({a} but not {b})"),
    }
}

/// A random world for differential testing against OpenFGA ([`diff_world`]): a model that
/// may use every construct of schema 1.1, tuples, and queries in scenarios.
#[derive(Debug, Clone)]
pub struct DiffWorld {
    /// Model DSL text (sometimes invalid on purpose: computed relations that loop, `from`
    /// over a relation no tupleset type defines, over-long relation names).
    pub model: String,
    /// Stored tuples, each admitted by the model when the model is valid; no two share
    /// object, relation and user.
    pub tuples: Vec<Tuple>,
    /// Query scenarios; the first has no contextual tuples.
    pub scenarios: Vec<DiffScenario>,
}

/// Queries asked with the same contextual tuples.
#[derive(Debug, Clone, Default)]
pub struct DiffScenario {
    /// Contextual tuples (none shares object, relation and user with a stored tuple).
    pub contextual_tuples: Vec<Tuple>,
    /// Checks.
    pub checks: Vec<DiffCheck>,
    /// List objects queries.
    pub list_objects: Vec<DiffListObjects>,
    /// List users queries (one filter each).
    pub list_users: Vec<DiffListUsers>,
}

/// A check of [`DiffWorld`].
#[derive(Debug, Clone)]
pub struct DiffCheck {
    /// User (object, userset or wildcard).
    pub user: User,
    /// Relation.
    pub relation: String,
    /// Object.
    pub object: ObjectRef,
    /// Request context.
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// A list-objects query of [`DiffWorld`].
#[derive(Debug, Clone)]
pub struct DiffListObjects {
    /// User.
    pub user: User,
    /// Relation.
    pub relation: String,
    /// Object type.
    pub object_type: String,
    /// Request context.
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// A list-users query of [`DiffWorld`].
#[derive(Debug, Clone)]
pub struct DiffListUsers {
    /// Object.
    pub object: ObjectRef,
    /// Relation.
    pub relation: String,
    /// Filter: a type, or `type#relation`.
    pub filter: String,
    /// Request context.
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// The conditions every [`diff_world`] model declares.
const DIFF_CONDITIONS: &str = "condition less(x: int, y: int) {
  x < y
}
condition flag(ok: bool) {
  ok
}
";

/// One entry of a relation's direct types in [`diff_world`].
#[derive(Debug, Clone, PartialEq)]
struct DirectEntry {
    /// `None` for the `user` type, else the object type index.
    ty: Option<usize>,
    /// `""` plain, `"*"` wildcard, else a relation (userset).
    rel: String,
    /// Condition name, if any.
    condition: Option<&'static str>,
}

impl DirectEntry {
    fn render(&self) -> String {
        let ty = self
            .ty
            .map_or_else(|| "user".to_owned(), |t| format!("t{t}"));
        let base = match self.rel.as_str() {
            "" => ty,
            "*" => format!("{ty}:*"),
            rel => format!("{ty}#{rel}"),
        };
        match self.condition {
            Some(c) => format!("{base} with {c}"),
            None => base,
        }
    }
}

/// A random world for differential testing from `seed`.
///
/// Types `user` and `t0`..`t{n-1}` (n is 2 or 3), each object type with 2 to 4 relations
/// `r0`.. and usually a tupleset `parent` (direct object types, sometimes conditional). A
/// relation is direct types (`user`, `user:*`, `tJ`, `tJ:*`, `tJ#rY`, any of them maybe
/// `with less` or `with flag`), a rewrite expression (`rX`, `rX from parent`, nested `or`,
/// `and`, `but not`), or both joined by `or`, `and` or `but not`. Computed relations mostly
/// point at earlier relations; sometimes later ones, so computed loops (which OpenFGA refuses)
/// appear. Tuples carry conditions with partial stored context; queries supply the rest (or
/// not, so missing-parameter errors appear). Userset and parent cycles are common.
pub fn diff_world(seed: u64) -> DiffWorld {
    let mut rng = XorShift(seed.wrapping_mul(0x2545_F491_4F6C_DD1D).max(1) ^ 0x5DEE_CE66);
    let chance = |rng: &mut XorShift, percent: u32| rng.below(100) < percent;
    let types = 2 + rng.below(2) as usize;
    let counts: Vec<usize> = (0..types).map(|_| 2 + rng.below(3) as usize).collect();
    // parent[t] = the tupleset's direct types (type index, conditional), if any.
    let parents: Vec<Option<Vec<(usize, bool)>>> = (0..types)
        .map(|_| {
            if chance(&mut rng, 85) {
                let mut list: Vec<(usize, bool)> = Vec::new();
                for j in 0..types {
                    if list.is_empty() && j + 1 == types || chance(&mut rng, 55) {
                        list.push((j, chance(&mut rng, 8)));
                    }
                }
                Some(list)
            } else {
                None
            }
        })
        .collect();
    let mut model = String::from("model\n  schema 1.1\ntype user\n");
    let mut direct: Vec<Vec<Vec<DirectEntry>>> = Vec::new();
    for t in 0..types {
        model.push_str(&format!("type t{t}\n  relations\n"));
        if let Some(list) = &parents[t] {
            let rendered: Vec<String> = list
                .iter()
                .map(|(j, c)| {
                    if *c {
                        format!("t{j} with flag")
                    } else {
                        format!("t{j}")
                    }
                })
                .collect();
            model.push_str(&format!("    define parent: [{}]\n", rendered.join(", ")));
        }
        let mut per_type = Vec::new();
        for r in 0..counts[t] {
            let mut entries: Vec<DirectEntry> = Vec::new();
            let has_expression_operand = r > 0 || parents[t].is_some();
            let with_direct = !has_expression_operand || chance(&mut rng, 75);
            if with_direct {
                let mut push = |entry: DirectEntry| {
                    if !entries
                        .iter()
                        .any(|e| e.ty == entry.ty && e.rel == entry.rel)
                    {
                        entries.push(entry);
                    }
                };
                let condition = |rng: &mut XorShift| match rng.below(100) {
                    0..=11 => Some("less"),
                    12..=16 => Some("flag"),
                    _ => None,
                };
                if chance(&mut rng, 75) {
                    let c = condition(&mut rng);
                    push(DirectEntry {
                        ty: None,
                        rel: String::new(),
                        condition: c,
                    });
                }
                if chance(&mut rng, 20) {
                    let c = if chance(&mut rng, 15) {
                        Some("flag")
                    } else {
                        None
                    };
                    push(DirectEntry {
                        ty: None,
                        rel: "*".into(),
                        condition: c,
                    });
                }
                if chance(&mut rng, 12) {
                    push(DirectEntry {
                        ty: Some(rng.below(types as u32) as usize),
                        rel: String::new(),
                        condition: None,
                    });
                }
                if chance(&mut rng, 5) {
                    push(DirectEntry {
                        ty: Some(rng.below(types as u32) as usize),
                        rel: "*".into(),
                        condition: None,
                    });
                }
                for _ in 0..rng.below(3) {
                    let j = rng.below(types as u32) as usize;
                    let y = rng.below(counts[j] as u32);
                    let c = if chance(&mut rng, 8) {
                        Some("flag")
                    } else {
                        None
                    };
                    push(DirectEntry {
                        ty: Some(j),
                        rel: format!("r{y}"),
                        condition: c,
                    });
                }
                if entries.is_empty() {
                    entries.push(DirectEntry {
                        ty: None,
                        rel: String::new(),
                        condition: None,
                    });
                }
            }
            let list: Vec<String> = entries.iter().map(DirectEntry::render).collect();
            let line = if !has_expression_operand || (with_direct && chance(&mut rng, 35)) {
                format!("[{}]", list.join(", "))
            } else {
                let expression = diff_expression(&mut rng, t, r, &counts, &parents, 2);
                if with_direct {
                    let word = match rng.below(10) {
                        0..=4 => "or",
                        5..=6 => "and",
                        _ => "but not",
                    };
                    format!("[{}] {word} {expression}", list.join(", "))
                } else {
                    // Strip one outer pair of parentheses: `define r: (a or b)` is fine too,
                    // but the bare form is the common one.
                    expression
                }
            };
            model.push_str(&format!("    define r{r}: {line}\n"));
            per_type.push(entries);
        }
        if chance(&mut rng, 2) {
            // Relation names near OpenFGA's limit of 50 characters.
            let len = 48 + rng.below(5) as usize;
            model.push_str(&format!("    define {}: [user]\n", "n".repeat(len)));
        }
        direct.push(per_type);
    }
    model.push_str(DIFF_CONDITIONS);

    let objects_per_type = 3usize;
    let object = |t: usize, i: usize| ObjectRef {
        object_type: format!("t{t}"),
        id: format!("o{i}"),
    };
    let user = |u: usize| User::Object(obj("user", format!("u{u}")));
    let random_condition = |rng: &mut XorShift, name: &str| -> TupleConditionSpec {
        let mut context = serde_json::Map::new();
        match name {
            "less" => {
                if rng.below(100) < 60 {
                    context.insert("y".into(), serde_json::Value::from(rng.below(6)));
                }
                if rng.below(100) < 10 {
                    context.insert("x".into(), serde_json::Value::from(rng.below(6)));
                }
            }
            _ => {
                if rng.below(100) < 50 {
                    context.insert("ok".into(), serde_json::Value::from(rng.below(2) == 0));
                }
            }
        }
        (name.to_owned(), context)
    };
    type TupleConditionSpec = (String, serde_json::Map<String, serde_json::Value>);
    let make = |object: ObjectRef,
                relation: &str,
                user: User,
                condition: Option<TupleConditionSpec>| Tuple {
        object,
        relation: relation.to_owned(),
        user,
        condition: condition.map(|(name, context)| crate::tuple::TupleCondition { name, context }),
    };
    // Every tuple the model admits, for the stored and contextual draws.
    let mut candidates: Vec<(Tuple, u32)> = Vec::new();
    for t in 0..types {
        for i in 0..objects_per_type {
            if let Some(list) = &parents[t] {
                for (j, conditional) in list {
                    for k in 0..objects_per_type {
                        let condition = conditional.then(|| random_condition(&mut rng, "flag"));
                        candidates.push((
                            make(
                                object(t, i),
                                "parent",
                                User::Object(object(*j, k)),
                                condition,
                            ),
                            10,
                        ));
                    }
                }
            }
            for (r, entries) in direct[t].iter().enumerate() {
                let relation = format!("r{r}");
                for entry in entries {
                    let condition = entry.condition.map(|c| random_condition(&mut rng, c));
                    match (entry.ty, entry.rel.as_str()) {
                        (None, "") => {
                            for u in 0..3 {
                                let c = condition
                                    .clone()
                                    .map(|(n, _)| random_condition(&mut rng, &n));
                                candidates.push((make(object(t, i), &relation, user(u), c), 22));
                            }
                        }
                        (None, _) => candidates.push((
                            make(
                                object(t, i),
                                &relation,
                                User::Wildcard("user".into()),
                                condition,
                            ),
                            15,
                        )),
                        (Some(j), "") => {
                            for k in 0..objects_per_type {
                                candidates.push((
                                    make(object(t, i), &relation, User::Object(object(j, k)), None),
                                    12,
                                ));
                            }
                        }
                        (Some(j), "*") => candidates.push((
                            make(
                                object(t, i),
                                &relation,
                                User::Wildcard(format!("t{j}")),
                                None,
                            ),
                            15,
                        )),
                        (Some(j), rel) => {
                            for k in 0..objects_per_type {
                                if j == t && k == i && rel == relation {
                                    // `x#r@x#r` holds without a tuple; it cannot be stored.
                                    continue;
                                }
                                let c = condition
                                    .clone()
                                    .map(|(n, _)| random_condition(&mut rng, &n));
                                candidates.push((
                                    make(
                                        object(t, i),
                                        &relation,
                                        User::Userset {
                                            object: object(j, k),
                                            relation: rel.to_owned(),
                                        },
                                        c,
                                    ),
                                    10,
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    let mut tuples = Vec::new();
    let mut spare = Vec::new();
    for (tuple, percent) in candidates {
        if chance(&mut rng, percent) {
            tuples.push(tuple);
        } else {
            spare.push(tuple);
        }
    }

    // What to ask about.
    let mut subjects: Vec<User> = (0..4).map(user).collect();
    subjects.push(User::Wildcard("user".into()));
    for (t, &count) in counts.iter().enumerate() {
        subjects.push(User::Object(object(t, rng.below(3) as usize)));
        let r = rng.below(count as u32);
        subjects.push(User::Userset {
            object: object(t, rng.below(3) as usize),
            relation: format!("r{r}"),
        });
    }
    let contexts: Vec<serde_json::Map<String, serde_json::Value>> = {
        let full = |x: u32, y: Option<u32>, ok: Option<bool>| {
            let mut m = serde_json::Map::new();
            m.insert("x".into(), serde_json::Value::from(x));
            if let Some(y) = y {
                m.insert("y".into(), serde_json::Value::from(y));
            }
            if let Some(ok) = ok {
                m.insert("ok".into(), serde_json::Value::from(ok));
            }
            m
        };
        vec![
            full(1, Some(3), Some(true)),
            full(4, Some(2), Some(false)),
            full(2, None, Some(true)),
            serde_json::Map::new(),
        ]
    };
    let pick_context = |rng: &mut XorShift| {
        let roll = rng.below(100);
        let i = if roll < 45 {
            0
        } else if roll < 75 {
            1
        } else if roll < 90 {
            2
        } else {
            3
        };
        contexts[i].clone()
    };
    let mut scenarios = Vec::new();
    for s in 0..2 {
        let mut scenario = DiffScenario::default();
        if s == 1 {
            let n = 1 + rng.below(4) as usize;
            for _ in 0..n {
                if spare.is_empty() {
                    break;
                }
                let i = rng.below(spare.len() as u32) as usize;
                scenario.contextual_tuples.push(spare.swap_remove(i));
            }
        }
        let scale = if s == 0 { 1 } else { 2 };
        for _ in 0..36 / scale {
            let t = rng.below(types as u32) as usize;
            let r = rng.below(counts[t] as u32);
            let id = if chance(&mut rng, 5) {
                7
            } else {
                rng.below(3) as usize
            };
            scenario.checks.push(DiffCheck {
                user: subjects[rng.below(subjects.len() as u32) as usize].clone(),
                relation: format!("r{r}"),
                object: object(t, id),
                context: pick_context(&mut rng),
            });
        }
        for _ in 0..10 / scale {
            let t = rng.below(types as u32) as usize;
            let r = rng.below(counts[t] as u32);
            scenario.list_objects.push(DiffListObjects {
                user: subjects[rng.below(subjects.len() as u32) as usize].clone(),
                relation: format!("r{r}"),
                object_type: format!("t{t}"),
                context: pick_context(&mut rng),
            });
        }
        for _ in 0..10 / scale {
            let t = rng.below(types as u32) as usize;
            let r = rng.below(counts[t] as u32);
            let filter = match rng.below(10) {
                0..=5 => "user".to_owned(),
                6..=7 => format!("t{}", rng.below(types as u32)),
                _ => {
                    let j = rng.below(types as u32) as usize;
                    format!("t{j}#r{}", rng.below(counts[j] as u32))
                }
            };
            scenario.list_users.push(DiffListUsers {
                object: object(t, rng.below(3) as usize),
                relation: format!("r{r}"),
                filter,
                context: pick_context(&mut rng),
            });
        }
        scenarios.push(scenario);
    }
    DiffWorld {
        model,
        tuples,
        scenarios,
    }
}

/// A rewrite expression for relation `r{own}` of type `t{t}`: `rX` (mostly an earlier
/// relation, sometimes a later one), `rX from parent` (mostly a relation some parent type
/// defines), or `or` / `and` / `but not` of such, nested at most `depth` levels.
fn diff_expression(
    rng: &mut XorShift,
    t: usize,
    own: usize,
    counts: &[usize],
    parents: &[Option<Vec<(usize, bool)>>],
    depth: u32,
) -> String {
    let leaf = |rng: &mut XorShift| -> String {
        let computed = |rng: &mut XorShift| -> Option<String> {
            let roll = rng.below(100);
            if own > 0 && roll < 94 {
                Some(format!("r{}", rng.below(own as u32)))
            } else if roll >= 94 && counts[t] > own + 1 {
                let later = own + 1 + rng.below((counts[t] - own - 1) as u32) as usize;
                Some(format!("r{later}"))
            } else {
                None
            }
        };
        let from = |rng: &mut XorShift| -> Option<String> {
            let list = parents[t].as_ref()?;
            let (j, _) = list[rng.below(list.len() as u32) as usize];
            let max = if rng.below(100) < 5 { 5 } else { counts[j] };
            Some(format!("r{} from parent", rng.below(max as u32)))
        };
        let first = if rng.below(2) == 0 {
            computed(rng).or_else(|| from(rng))
        } else {
            from(rng).or_else(|| computed(rng))
        };
        // The caller only asks when one of the two exists.
        first.unwrap_or_else(|| "r0".to_owned())
    };
    // Nest less the deeper it goes: deep `but not` over cycles is slow for OpenFGA.
    if depth == 0 || rng.below(10) < 7 - depth.min(2) * 2 + 2 {
        return leaf(rng);
    }
    let a = diff_expression(rng, t, own, counts, parents, depth - 1);
    let b = diff_expression(rng, t, own, counts, parents, depth - 1);
    match rng.below(5) {
        0 | 1 => format!("({a} or {b})"),
        2 => format!("({a} and {b})"),
        _ => format!("({a} but not {b})"),
    }
}
