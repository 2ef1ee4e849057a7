//! The one symlink resolver: where a path in an archive (or an app directory) leads when the
//! operating system follows it, shared by the validator, [`Archive::resolve`] and the packer's
//! walk so that they can never disagree about a link.
//!
//! Checking each link on its own, lexically, is not enough: `sub/up -> ..` and
//! `x -> sub/up/../../etc/passwd` each stay inside the tree, but `x` leaves it, because `..`
//! applies to the *physical* directory a link led to, not to the text before it. So a path is
//! resolved as `path_resolution(7)` describes: component by component against the whole tree,
//! following links within links (a target is relative to the directory holding the link, as
//! resolved), at most [`MAX_LINK_EXPANSIONS`] expansions per lookup, absolute targets and `..`
//! above the root leaving the tree.
//!
//! Where the tree has nothing to follow (a component that does not exist, or a file used as a
//! directory) the rest of the path is applied lexically, and rejected if it would climb above
//! the root: what is missing now may exist when the tree is extracted somewhere, so anything that
//! could leave is refused.
//!
//! The tree is a lookup callback (name → [`Node`]), so any store of entries can be resolved
//! against. A [`Resolver`] remembers how each link it has followed resolved, which keeps
//! resolving every link of a large tree linear in the total length of the targets.
//!
//! [`Archive::resolve`]: crate::archive::Archive::resolve

use std::collections::HashMap;
use std::fmt;

/// How many symlinks one lookup may follow, as Linux's `MAXSYMLINKS`.
pub const MAX_LINK_EXPANSIONS: u32 = 40;

/// What the tree holds at a name (a `/`-separated path relative to the root, with no `.`, `..`
/// or links in it: the lookup never has to resolve anything itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Missing,
    Dir,
    File,
    Symlink(String),
}

/// Where a path led.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// An entry of the tree (never a symlink): its physical name (`""` for the root) and
    /// whether it is a directory.
    Found { name: String, is_dir: bool },
    /// Nothing in the tree, but the path cannot leave it either.
    Missing,
}

/// Why a path could not be resolved. `E` is the lookup's own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError<E> {
    /// The path leaves the tree. `chain` lists the links followed on the way out, in order,
    /// as `(link, target)`: each link is followed by the links its own target went through.
    Leaves { chain: Vec<(String, String)> },
    /// More than [`MAX_LINK_EXPANSIONS`] links on the way, or a link whose resolution needs
    /// itself (`loop_` is then true). The OS gives `ELOOP` in both cases.
    TooManyLinks { loop_: bool },
    /// The lookup failed.
    Lookup(E),
}

impl<E: fmt::Display> fmt::Display for LinkError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Leaves { chain } => {
                f.write_str("leaves the tree")?;
                if !chain.is_empty() {
                    write!(f, " through {}", Chain(chain))?;
                }
                Ok(())
            }
            LinkError::TooManyLinks { .. } => f.write_str("too many levels of symbolic links"),
            LinkError::Lookup(e) => e.fmt(f),
        }
    }
}

/// A chain of links as `` `a` -> `b`, `b` -> `..` ``.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a [(String, String)]);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (link, target)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "`{}` -> `{}`",
                super::path::printable(link),
                super::path::printable(target)
            )?;
        }
        Ok(())
    }
}

/// Where walking a path got to.
#[derive(Debug, Clone)]
enum State {
    /// A node of the tree, `depth` components below the root.
    Node {
        name: String,
        is_dir: bool,
        depth: usize,
    },
    /// Past a missing component or a file: only the depth is known.
    Lexical { depth: usize },
}

/// How one link resolved: where its target leads, and how many expansions that took (the link
/// itself included).
#[derive(Debug, Clone)]
struct Outcome {
    state: State,
    expansions: u32,
}

#[derive(Debug)]
enum Memo {
    InProgress,
    Done(Outcome),
}

/// Resolves paths against one tree, remembering each link's resolution.
pub struct Resolver<F> {
    lookup: F,
    links: HashMap<String, Memo>,
}

impl<F> fmt::Debug for Resolver<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("links", &self.links.len())
            .finish_non_exhaustive()
    }
}

impl<F, E> Resolver<F>
where
    F: FnMut(&str) -> Result<Node, E>,
{
    pub fn new(lookup: F) -> Self {
        Resolver {
            lookup,
            links: HashMap::new(),
        }
    }

    /// Resolves `path` (relative to the root) following every link on the way, the last
    /// component's included, like `stat(2)`.
    pub fn resolve(&mut self, path: &str) -> Result<Resolved, LinkError<E>> {
        let root = State::Node {
            name: String::new(),
            is_dir: true,
            depth: 0,
        };
        let mut expansions = 0;
        Ok(match self.walk(root, path, &mut expansions, 0)? {
            State::Node { name, is_dir, .. } => Resolved::Found { name, is_dir },
            State::Lexical { .. } => Resolved::Missing,
        })
    }

    /// Applies the components of `path` from `state`. `nesting` is how many link expansions
    /// enclose this walk (each is at least one expansion, so it is bounded like them).
    fn walk(
        &mut self,
        mut state: State,
        path: &str,
        expansions: &mut u32,
        nesting: u32,
    ) -> Result<State, LinkError<E>> {
        if path.starts_with('/') {
            return Err(LinkError::Leaves { chain: Vec::new() });
        }
        // The links expanded on this level so far, to name them if the path leaves.
        let mut followed: Vec<(String, String)> = Vec::new();
        for c in path.split('/') {
            state = match self.step(state, c, expansions, nesting, &mut followed) {
                Ok(state) => state,
                Err(LinkError::Leaves { chain }) => {
                    followed.extend(chain);
                    return Err(LinkError::Leaves { chain: followed });
                }
                Err(err) => return Err(err),
            };
        }
        Ok(state)
    }

    /// Applies one component.
    fn step(
        &mut self,
        state: State,
        c: &str,
        expansions: &mut u32,
        nesting: u32,
        followed: &mut Vec<(String, String)>,
    ) -> Result<State, LinkError<E>> {
        Ok({
            match state {
                State::Lexical { depth } => lexical(depth, c)?,
                State::Node {
                    depth,
                    is_dir: false,
                    ..
                } => lexical(depth, c)?,
                State::Node { name, depth, .. } => match c {
                    "" | "." => State::Node {
                        name,
                        is_dir: true,
                        depth,
                    },
                    ".." if depth == 0 => return Err(LinkError::Leaves { chain: Vec::new() }),
                    ".." => State::Node {
                        name: super::path::parent(&name).to_owned(),
                        is_dir: true,
                        depth: depth - 1,
                    },
                    c => {
                        let candidate = if name.is_empty() {
                            c.to_owned()
                        } else {
                            format!("{name}/{c}")
                        };
                        match (self.lookup)(&candidate).map_err(LinkError::Lookup)? {
                            Node::Missing => State::Lexical { depth: depth + 1 },
                            Node::Dir => State::Node {
                                name: candidate,
                                is_dir: true,
                                depth: depth + 1,
                            },
                            Node::File => State::Node {
                                name: candidate,
                                is_dir: false,
                                depth: depth + 1,
                            },
                            Node::Symlink(target) => {
                                let link = (candidate.clone(), target.clone());
                                let outcome = self.expand(candidate, target, depth, nesting)?;
                                *expansions += outcome.expansions;
                                if *expansions > MAX_LINK_EXPANSIONS {
                                    return Err(LinkError::TooManyLinks { loop_: false });
                                }
                                followed.push(link);
                                outcome.state
                            }
                        }
                    }
                },
            }
        })
    }

    /// Resolves the target of `link` from the directory holding it (`parent(link)`, `depth`
    /// components below the root), once per resolver.
    fn expand(
        &mut self,
        link: String,
        target: String,
        depth: usize,
        nesting: u32,
    ) -> Result<Outcome, LinkError<E>> {
        match self.links.get(&link) {
            Some(Memo::Done(outcome)) => return Ok(outcome.clone()),
            Some(Memo::InProgress) => return Err(LinkError::TooManyLinks { loop_: true }),
            None => {}
        }
        if nesting >= MAX_LINK_EXPANSIONS {
            return Err(LinkError::TooManyLinks { loop_: false });
        }
        self.links.insert(link.clone(), Memo::InProgress);
        let dir = State::Node {
            name: super::path::parent(&link).to_owned(),
            is_dir: true,
            depth,
        };
        let mut expansions = 1;
        let walked = self.walk(dir, &target, &mut expansions, nesting + 1);
        match walked {
            Ok(state) => {
                let outcome = Outcome { state, expansions };
                self.links.insert(link, Memo::Done(outcome.clone()));
                Ok(outcome)
            }
            Err(mut err) => {
                // Failures are not remembered: one that ran out of expansions depends on how
                // deep inside other links this one was reached.
                self.links.remove(&link);
                if let LinkError::Leaves { chain } = &mut err {
                    chain.insert(0, (link, target));
                }
                Err(err)
            }
        }
    }
}

/// One component applied where the tree has nothing more to say.
fn lexical<E>(depth: usize, component: &str) -> Result<State, LinkError<E>> {
    let depth = match component {
        "" | "." => depth,
        ".." => depth
            .checked_sub(1)
            .ok_or(LinkError::Leaves { chain: Vec::new() })?,
        _ => depth + 1,
    };
    Ok(State::Lexical { depth })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A tree from `(name, node)` pairs; parents of listed names are directories.
    fn tree(entries: &[(&str, Node)]) -> impl FnMut(&str) -> Result<Node, Infallible> + use<> {
        let mut map: HashMap<String, Node> = HashMap::new();
        for (name, node) in entries {
            let mut p = super::super::path::parent(name);
            while !p.is_empty() {
                map.entry(p.to_owned()).or_insert(Node::Dir);
                p = super::super::path::parent(p);
            }
            map.insert((*name).to_owned(), node.clone());
        }
        move |name| Ok(map.get(name).cloned().unwrap_or(Node::Missing))
    }

    fn link(target: &str) -> Node {
        Node::Symlink(target.to_owned())
    }

    fn found(name: &str, is_dir: bool) -> Resolved {
        Resolved::Found {
            name: name.to_owned(),
            is_dir,
        }
    }

    fn leaves<T: fmt::Debug>(r: Result<T, LinkError<Infallible>>) -> Vec<(String, String)> {
        match r {
            Err(LinkError::Leaves { chain }) => chain,
            other => panic!("expected to leave the tree, got {other:?}"),
        }
    }

    #[test]
    fn in_tree_links_resolve_to_their_entry() {
        let mut r = Resolver::new(tree(&[
            ("real/mod.lua", Node::File),
            ("alias", link("real/mod.lua")),
            ("real/up", link("../real")),
            ("here", link(".")),
        ]));
        assert_eq!(r.resolve("alias"), Ok(found("real/mod.lua", false)));
        assert_eq!(
            r.resolve("real/up/mod.lua"),
            Ok(found("real/mod.lua", false))
        );
        assert_eq!(r.resolve("real/up"), Ok(found("real", true)));
        assert_eq!(r.resolve("here"), Ok(found("", true)));
        assert_eq!(r.resolve("nothing"), Ok(Resolved::Missing));
        assert_eq!(r.resolve("real/mod.lua"), Ok(found("real/mod.lua", false)));
    }

    #[test]
    fn dotdot_above_the_root_leaves() {
        let mut r = Resolver::new(tree(&[("a/l", link("../../x")), ("b", Node::Dir)]));
        assert_eq!(leaves(r.resolve("a/l")), [("a/l".into(), "../../x".into())]);
        assert!(matches!(r.resolve(".."), Err(LinkError::Leaves { .. })));
        assert!(matches!(
            r.resolve("b/../.."),
            Err(LinkError::Leaves { .. })
        ));
    }

    #[test]
    fn absolute_targets_leave() {
        let mut r = Resolver::new(tree(&[("abs", link("/etc/passwd"))]));
        assert_eq!(
            leaves(r.resolve("abs")),
            [("abs".into(), "/etc/passwd".into())]
        );
    }

    #[test]
    fn a_chain_through_a_parent_link_leaves() {
        // Each is inside the tree on its own; together they reach /etc/passwd.
        let mut r = Resolver::new(tree(&[
            ("sub/up", link("..")),
            ("x", link("sub/up/../../etc/passwd")),
        ]));
        assert_eq!(r.resolve("sub/up"), Ok(found("", true)));
        assert_eq!(
            leaves(r.resolve("x")),
            [
                ("x".into(), "sub/up/../../etc/passwd".into()),
                ("sub/up".into(), "..".into())
            ]
        );
        let err = r.resolve("x").unwrap_err().to_string();
        assert!(
            err.contains("through `x` -> `sub/up/../../etc/passwd`, `sub/up` -> `..`"),
            "{err}"
        );
    }

    #[test]
    fn a_chain_through_a_directory_link_then_dotdot_leaves() {
        // `d/..` is `a`, not the root: `..` applies to where `d` led.
        let mut r = Resolver::new(tree(&[
            ("a/b/f", Node::File),
            ("d", link("a/b")),
            ("x", link("d/../../..")),
            ("y", link("d/../../a/b/f")),
        ]));
        assert_eq!(r.resolve("d/f"), Ok(found("a/b/f", false)));
        assert_eq!(r.resolve("y"), Ok(found("a/b/f", false)));
        assert_eq!(
            leaves(r.resolve("x")),
            [
                ("x".into(), "d/../../..".into()),
                ("d".into(), "a/b".into())
            ]
        );
        // Reached through another link, the chain names both.
        let mut r = Resolver::new(tree(&[
            ("a/b/f", Node::File),
            ("d", link("a/b")),
            ("u", link("d/../../..")),
            ("x", link("u/etc")),
        ]));
        assert_eq!(
            leaves(r.resolve("x")),
            [
                ("x".into(), "u/etc".into()),
                ("u".into(), "d/../../..".into()),
                ("d".into(), "a/b".into())
            ]
        );
    }

    #[test]
    fn a_loop_is_too_many_levels() {
        let mut r = Resolver::new(tree(&[("a", link("b")), ("b", link("a"))]));
        for _ in 0..2 {
            let err = r.resolve("a").unwrap_err();
            assert_eq!(err, LinkError::TooManyLinks { loop_: true });
            assert_eq!(err.to_string(), "too many levels of symbolic links");
        }
        let mut r = Resolver::new(tree(&[("d/loop", link(".."))]));
        assert_eq!(r.resolve("d/loop/d/loop/d"), Ok(found("d", true)));
    }

    #[test]
    fn forty_expansions_resolve_and_forty_one_do_not() {
        let chain = |n: usize| {
            let mut entries: Vec<(String, Node)> = (0..n)
                .map(|i| (format!("l{i}"), link(&format!("l{}", i + 1))))
                .collect();
            entries.push((format!("l{n}"), Node::File));
            entries
        };
        let forty = chain(40);
        let refs: Vec<(&str, Node)> = forty.iter().map(|(n, k)| (n.as_str(), k.clone())).collect();
        assert_eq!(
            Resolver::new(tree(&refs)).resolve("l0"),
            Ok(found("l40", false))
        );
        let forty_one = chain(41);
        let refs: Vec<(&str, Node)> = forty_one
            .iter()
            .map(|(n, k)| (n.as_str(), k.clone()))
            .collect();
        let mut r = Resolver::new(tree(&refs));
        assert_eq!(r.resolve("l1"), Ok(found("l41", false)));
        // Remembered resolutions still count every expansion.
        assert_eq!(
            r.resolve("l0"),
            Err(LinkError::TooManyLinks { loop_: false })
        );
        assert_eq!(
            Resolver::new(tree(&refs)).resolve("l0"),
            Err(LinkError::TooManyLinks { loop_: false })
        );
    }

    #[test]
    fn dangling_components_continue_lexically() {
        let mut r = Resolver::new(tree(&[
            ("a/f", Node::File),
            ("ok", link("gone/../a")),
            ("out", link("gone/../../x")),
            ("through_file", link("a/f/../../..")),
            ("deep", link("a/gone/x/../..")),
        ]));
        assert_eq!(r.resolve("ok"), Ok(Resolved::Missing));
        assert_eq!(
            leaves(r.resolve("out")),
            [("out".into(), "gone/../../x".into())]
        );
        assert_eq!(
            leaves(r.resolve("through_file")),
            [("through_file".into(), "a/f/../../..".into())]
        );
        assert_eq!(r.resolve("deep"), Ok(Resolved::Missing));
        assert_eq!(r.resolve("a/f/x"), Ok(Resolved::Missing));
    }
}
