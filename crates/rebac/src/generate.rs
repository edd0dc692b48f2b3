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
