//! The benchmark world: a deterministic, seeded generator of a large tenant.
//!
//! Owns the world's model text, its tuples and sample queries, shared by the criterion bench
//! and the `rebac-report` binary. It must not depend on a random-number crate: a small
//! xorshift keeps it reproducible from the seed alone.
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
