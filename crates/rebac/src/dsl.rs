//! The OpenFGA modeling language (schema 1.1): lexer and parser to [`ModelAst`].
//!
//! Owns turning DSL text into the syntax tree, with 1-based line and column on every node and
//! error, recovering at line boundaries so that every syntax error is reported, and printing a
//! tree back as DSL ([`print`]). It must not judge meaning (undefined types, relations,
//! conditions): that is [`crate::model`]'s validation, shared with the JSON form.

use crate::condition::ParamType;
use crate::model::{
    ConditionDef, DirectType, MAX_REWRITE_DEPTH, ModelAst, ModelError, Pos, Problems, RelationDef,
    Rewrite, TypeDef,
};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Colon,
    Comma,
    Hash,
    Star,
    LBracket,
    RBracket,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Lt,
    Gt,
    Newline,
    Bad(char),
    Eof,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(word) => format!("`{word}`"),
        Tok::Colon => "`:`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Hash => "`#`".into(),
        Tok::Star => "`*`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBrace => "`{`".into(),
        Tok::RBrace => "`}`".into(),
        Tok::Lt => "`<`".into(),
        Tok::Gt => "`>`".into(),
        Tok::Newline => "the end of the line".into(),
        Tok::Bad(c) => format!("the character `{c}`"),
        Tok::Eof => "the end of the model".into(),
    }
}

/// Reads the text in place (a byte offset into it), without a copy of it as characters.
struct Lexer<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    at: usize,
    /// The character before `at`, if any.
    previous: Option<char>,
    line: u32,
    column: u32,
    /// Open `(` and `[`: newlines inside them are not tokens.
    depth: usize,
}

fn word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '$' | '|' | '+' | '=' | '%' | '&')
}

impl Lexer<'_> {
    fn peek_char(&self) -> Option<char> {
        self.text.get(self.at..)?.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.at += c.len_utf8();
        self.previous = Some(c);
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn next(&mut self) -> (Tok, Pos) {
        loop {
            let Some(c) = self.peek_char() else {
                return (Tok::Eof, self.pos());
            };
            let pos = self.pos();
            let after_space = self.previous.is_none_or(char::is_whitespace);
            match c {
                '\n' => {
                    self.bump();
                    if self.depth == 0 {
                        return (Tok::Newline, pos);
                    }
                }
                c if c.is_whitespace() => {
                    self.bump();
                }
                '#' if after_space => {
                    while self.peek_char().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                c if word_char(c) => {
                    let mut word = String::new();
                    while let Some(c) = self.peek_char().filter(|c| word_char(*c)) {
                        word.push(c);
                        self.bump();
                    }
                    return (Tok::Word(word), pos);
                }
                _ => {
                    self.bump();
                    let tok = match c {
                        ':' => Tok::Colon,
                        ',' => Tok::Comma,
                        '#' => Tok::Hash,
                        '*' => Tok::Star,
                        '[' => {
                            self.depth += 1;
                            Tok::LBracket
                        }
                        ']' => {
                            self.depth = self.depth.saturating_sub(1);
                            Tok::RBracket
                        }
                        '(' => {
                            self.depth += 1;
                            Tok::LParen
                        }
                        ')' => {
                            self.depth = self.depth.saturating_sub(1);
                            Tok::RParen
                        }
                        '{' => Tok::LBrace,
                        '}' => Tok::RBrace,
                        '<' => Tok::Lt,
                        '>' => Tok::Gt,
                        other => Tok::Bad(other),
                    };
                    return (tok, pos);
                }
            }
        }
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    /// How deep parentheses nest from here (an `(` was just read), counting that one, without
    /// consuming anything: for the message of the nesting limit. Linear in the text it looks
    /// at, and it stops where the opened parenthesis closes.
    fn paren_depth_ahead(&self) -> usize {
        let mut depth = 1usize;
        let mut deepest = 1usize;
        for byte in self.text.as_bytes().iter().skip(self.at) {
            match byte {
                b'(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        deepest
    }

    /// The raw text up to the `}` matching an already consumed `{` (quotes respected), and the
    /// position where it starts. Consumes the closing brace.
    fn raw_block(&mut self) -> Option<(String, Pos)> {
        let start = self.pos();
        let mut text = String::new();
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        let mut escaped = false;
        while let Some(c) = self.bump() {
            if let Some(open) = quote {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == open {
                    quote = None;
                }
                text.push(c);
                continue;
            }
            match c {
                '"' | '\'' => quote = Some(c),
                '{' => depth += 1,
                '}' if depth == 0 => return Some((text, start)),
                '}' => depth -= 1,
                _ => {}
            }
            text.push(c);
        }
        None
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<(Tok, Pos)>,
    errors: Problems,
}

type Res<T> = Result<T, ModelError>;

fn error(pos: Pos, message: impl Into<String>) -> ModelError {
    ModelError {
        line: pos.line,
        column: pos.column,
        path: None,
        message: message.into(),
    }
}

impl Parser<'_> {
    fn peek(&mut self) -> &(Tok, Pos) {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next());
        }
        self.peeked
            .get_or_insert_with(|| (Tok::Eof, Pos::default()))
    }

    fn next(&mut self) -> (Tok, Pos) {
        match self.peeked.take() {
            Some(tok) => tok,
            None => self.lexer.next(),
        }
    }

    fn skip_newlines(&mut self) {
        while self.peek().0 == Tok::Newline {
            self.next();
        }
    }

    /// Skips to the start of the next line (error recovery).
    fn skip_line(&mut self) {
        self.lexer.depth = 0;
        loop {
            match self.next().0 {
                Tok::Newline | Tok::Eof => return,
                _ => {}
            }
        }
    }

    fn expect(&mut self, want: Tok, what: &str) -> Res<Pos> {
        let (tok, pos) = self.next();
        if tok == want {
            Ok(pos)
        } else {
            Err(error(
                pos,
                format!("expected {what}, found {}", describe(&tok)),
            ))
        }
    }

    fn word(&mut self, what: &str) -> Res<(String, Pos)> {
        match self.next() {
            (Tok::Word(word), pos) => Ok((word, pos)),
            (tok, pos) => Err(error(
                pos,
                format!("expected {what}, found {}", describe(&tok)),
            )),
        }
    }

    fn end_of_line(&mut self) -> Res<()> {
        match self.next() {
            (Tok::Newline | Tok::Eof, _) => Ok(()),
            (tok, pos) => Err(error(
                pos,
                format!("expected the end of the line, found {}", describe(&tok)),
            )),
        }
    }

    fn is_word(&mut self, word: &str) -> bool {
        matches!(&self.peek().0, Tok::Word(w) if w == word)
    }

    fn header(&mut self) -> Res<()> {
        self.skip_newlines();
        let (word, pos) = self.word("`model` at the start of the model")?;
        if word != "model" {
            return Err(error(
                pos,
                format!(
                    "expected `model` at the start of the model, found `{word}`; a model starts with `model` then `schema 1.1`"
                ),
            ));
        }
        self.end_of_line()?;
        self.skip_newlines();
        let (word, pos) = self.word("`schema 1.1`")?;
        if word != "schema" {
            return Err(error(pos, format!("expected `schema 1.1`, found `{word}`")));
        }
        let (version, pos) = self.word("a schema version such as `1.1`")?;
        if version != "1.1" {
            return Err(error(
                pos,
                format!(
                    "schema version `{version}` is not supported; use `schema 1.1` (modular models, schema 1.2, are not supported)"
                ),
            ));
        }
        self.end_of_line()
    }

    fn model(&mut self) -> ModelAst {
        let mut ast = ModelAst::default();
        if let Err(e) = self.header() {
            self.errors.push(e);
            self.skip_line();
        }
        loop {
            if self.errors.full() {
                // Enough to act on; reading on would only cost time.
                self.errors.stop();
                break;
            }
            self.skip_newlines();
            let (tok, pos) = self.peek().clone();
            match tok {
                Tok::Eof => break,
                Tok::Word(word) if word == "type" => {
                    self.next();
                    if let Some(type_def) = self.type_def() {
                        ast.types.push(type_def);
                    }
                }
                Tok::Word(word) if word == "condition" => {
                    self.next();
                    match self.condition() {
                        Ok(condition) => ast.conditions.push(condition),
                        Err(e) => {
                            self.errors.push(e);
                            self.skip_line();
                        }
                    }
                }
                Tok::Word(word) if word == "module" || word == "extend" => {
                    self.errors.push(error(
                        pos,
                        format!("`{word}` (modular models) is not supported; merge the modules into one schema 1.1 model"),
                    ));
                    self.skip_line();
                }
                Tok::Word(word) if word == "define" || word == "relations" => {
                    self.errors.push(error(
                        pos,
                        format!("`{word}` outside a type; put it under a `type` line"),
                    ));
                    self.skip_line();
                }
                other => {
                    self.errors.push(error(
                        pos,
                        format!("expected `type` or `condition`, found {}", describe(&other)),
                    ));
                    self.skip_line();
                }
            }
        }
        ast
    }

    fn type_def(&mut self) -> Option<TypeDef> {
        let (name, pos) = match self.word("a type name after `type`") {
            Ok(found) => found,
            Err(e) => {
                self.errors.push(e);
                self.skip_line();
                return None;
            }
        };
        if let Err(e) = self.end_of_line() {
            self.errors.push(e);
            self.skip_line();
        }
        let mut type_def = TypeDef {
            name,
            pos,
            relations: Vec::new(),
        };
        self.skip_newlines();
        if self.is_word("relations") {
            self.next();
            if let Err(e) = self.end_of_line() {
                self.errors.push(e);
                self.skip_line();
            }
            let mut any = false;
            loop {
                self.skip_newlines();
                if !self.is_word("define") {
                    break;
                }
                any = true;
                self.next();
                match self.define() {
                    Ok(relation) => type_def.relations.push(relation),
                    Err(e) => {
                        self.errors.push(e);
                        self.skip_line();
                    }
                }
            }
            if !any {
                let pos = self.peek().1;
                self.errors.push(error(
                    pos,
                    format!("`relations` of type `{}` is followed by no `define`; add relations or remove the `relations` line", type_def.name),
                ));
            }
        }
        Some(type_def)
    }

    fn define(&mut self) -> Res<RelationDef> {
        let (name, pos) = self.word("a relation name after `define`")?;
        self.expect(Tok::Colon, "`:` after the relation name")?;
        let mut direct = None;
        let rewrite = self.expression(0, &mut direct)?;
        self.end_of_line()?;
        Ok(RelationDef {
            name,
            pos,
            rewrite,
            directly_related: direct.unwrap_or_default(),
        })
    }

    fn expression(&mut self, depth: usize, direct: &mut Option<Vec<DirectType>>) -> Res<Rewrite> {
        let first = self.term(depth, direct)?;
        let mut operands = vec![first];
        let mut operator: Option<(String, Pos)> = None;
        loop {
            let (tok, pos) = self.peek().clone();
            let Tok::Word(word) = tok else { break };
            if word != "or" && word != "and" {
                break;
            }
            if let Some((previous, _)) = &operator
                && *previous != word
            {
                return Err(error(
                    pos,
                    format!(
                        "`{word}` after `{previous}` without parentheses; OpenFGA does not mix `or` and `and` at one level, so add parentheses, e.g. `(a {previous} b) {word} c`"
                    ),
                ));
            }
            self.next();
            operator = Some((word, pos));
            operands.push(self.term(depth, direct)?);
        }
        let mut result = match operator {
            None => operands.pop().unwrap_or(Rewrite::This),
            Some((word, _)) if word == "or" => Rewrite::Union(operands),
            Some(_) => Rewrite::Intersection(operands),
        };
        if self.is_word("but") {
            let (_, pos) = self.next();
            match self.next() {
                (Tok::Word(word), _) if word == "not" => {}
                (tok, pos) => {
                    return Err(error(
                        pos,
                        format!("expected `not` after `but`, found {}", describe(&tok)),
                    ));
                }
            }
            let subtract = self.term(depth, direct)?;
            result = Rewrite::Difference(Box::new(result), Box::new(subtract));
            if let (Tok::Word(word), pos2) = self.peek().clone()
                && (word == "or" || word == "and" || word == "but")
            {
                let _ = pos;
                return Err(error(
                    pos2,
                    format!(
                        "`{word}` after `but not ...` without parentheses; add parentheses to say which operand it belongs to"
                    ),
                ));
            }
        }
        Ok(result)
    }

    fn term(&mut self, depth: usize, direct: &mut Option<Vec<DirectType>>) -> Res<Rewrite> {
        let (tok, pos) = self.next();
        match tok {
            Tok::LBracket => {
                if direct.is_some() {
                    return Err(error(
                        pos,
                        "a relation may list its directly related types (`[...]`) only once; merge the lists",
                    ));
                }
                *direct = Some(self.direct_types(pos)?);
                Ok(Rewrite::This)
            }
            Tok::LParen => {
                if depth >= MAX_REWRITE_DEPTH {
                    let deepest = depth + self.lexer.paren_depth_ahead();
                    return Err(error(
                        pos,
                        format!(
                            "parentheses nest {deepest} levels deep, more than the limit of {MAX_REWRITE_DEPTH} rewrite nesting levels"
                        ),
                    ));
                }
                let inner = self.expression(depth + 1, direct)?;
                self.expect(Tok::RParen, "`)` closing the parenthesis")?;
                Ok(inner)
            }
            Tok::Word(word) if is_keyword(&word) => Err(error(
                pos,
                format!("expected a relation name, `[types]` or `(`, found the keyword `{word}`"),
            )),
            Tok::Word(word) => {
                if self.is_word("from") {
                    self.next();
                    let (tupleset, _) = self.word("a relation name after `from`")?;
                    Ok(Rewrite::TupleToUserset {
                        tupleset,
                        computed: word,
                        pos,
                    })
                } else {
                    Ok(Rewrite::Computed {
                        relation: word,
                        pos,
                    })
                }
            }
            other => Err(error(
                pos,
                format!(
                    "expected a relation name, `[types]` or `(`, found {}",
                    describe(&other)
                ),
            )),
        }
    }

    fn direct_types(&mut self, open: Pos) -> Res<Vec<DirectType>> {
        let mut types = Vec::new();
        loop {
            let (type_name, pos) = match self.next() {
                (Tok::Word(word), pos) => (word, pos),
                (Tok::RBracket, pos) if types.is_empty() => {
                    return Err(error(
                        pos,
                        "`[]` lists no type; name at least one, e.g. `[user]`",
                    ));
                }
                (tok, pos) => {
                    return Err(error(
                        pos,
                        format!("expected a type name in `[...]`, found {}", describe(&tok)),
                    ));
                }
            };
            let mut direct = DirectType {
                type_name,
                relation: None,
                wildcard: false,
                condition: None,
                pos,
            };
            match self.peek().0 {
                Tok::Hash => {
                    self.next();
                    direct.relation = Some(self.word("a relation name after `#`")?.0);
                }
                Tok::Colon => {
                    self.next();
                    self.expect(Tok::Star, "`*` after `:` (a wildcard is written `type:*`)")?;
                    direct.wildcard = true;
                }
                _ => {}
            }
            if self.is_word("with") {
                self.next();
                direct.condition = Some(self.word("a condition name after `with`")?.0);
            }
            types.push(direct);
            match self.next() {
                (Tok::Comma, _) => {}
                (Tok::RBracket, _) => return Ok(types),
                (Tok::Eof, _) => return Err(error(open, "`[` is never closed; add `]`")),
                (tok, pos) => {
                    return Err(error(
                        pos,
                        format!(
                            "expected `,` or `]` in the type list, found {}",
                            describe(&tok)
                        ),
                    ));
                }
            }
        }
    }

    fn condition(&mut self) -> Res<ConditionDef> {
        let (name, pos) = self.word("a condition name after `condition`")?;
        self.expect(Tok::LParen, "`(` opening the parameter list")?;
        let mut params = Vec::new();
        if self.peek().0 == Tok::RParen {
            self.next();
        } else {
            loop {
                let (param, param_pos) = self.word("a parameter name")?;
                self.expect(Tok::Colon, "`:` after the parameter name")?;
                let type_pos = self.peek().1;
                let text = self.param_type(0)?;
                let param_type =
                    ParamType::parse_dsl(&text).map_err(|message| error(type_pos, message))?;
                if params
                    .iter()
                    .any(|(p, _): &(String, ParamType)| *p == param)
                {
                    return Err(error(
                        param_pos,
                        format!("parameter `{param}` is declared twice in condition `{name}`"),
                    ));
                }
                params.push((param, param_type));
                match self.next() {
                    (Tok::Comma, _) => {}
                    (Tok::RParen, _) => break,
                    (tok, pos) => {
                        return Err(error(
                            pos,
                            format!(
                                "expected `,` or `)` in the parameter list, found {}",
                                describe(&tok)
                            ),
                        ));
                    }
                }
            }
        }
        self.lexer.depth = 0;
        self.skip_newlines();
        let (tok, brace) = self.next();
        if tok != Tok::LBrace {
            return Err(error(
                brace,
                format!(
                    "expected `{{` opening the condition's expression, found {}",
                    describe(&tok)
                ),
            ));
        }
        let (raw, start) = self.lexer.raw_block().ok_or_else(|| {
            error(
                brace,
                format!("the expression of condition `{name}` is never closed; add `}}`"),
            )
        })?;
        let (expression, expression_pos) = trim_block(&raw, start);
        Ok(ConditionDef {
            name,
            pos,
            params,
            expression,
            expression_pos,
        })
    }

    fn param_type(&mut self, depth: usize) -> Res<String> {
        let (word, pos) = self.word("a parameter type such as `string`")?;
        if depth > 8 {
            return Err(error(pos, "parameter types nest deeper than 8 levels"));
        }
        if self.peek().0 == Tok::Lt {
            self.next();
            let inner = self.param_type(depth + 1)?;
            self.expect(Tok::Gt, "`>` closing the generic type")?;
            return Ok(format!("{word}<{inner}>"));
        }
        Ok(word)
    }
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "or" | "and"
            | "but"
            | "not"
            | "from"
            | "define"
            | "type"
            | "relations"
            | "condition"
            | "with"
    )
}

/// Trims surrounding whitespace off a condition body, keeping the position of its first
/// non-blank character.
fn trim_block(raw: &str, start: Pos) -> (String, Pos) {
    let mut pos = start;
    for c in raw.chars() {
        if !c.is_whitespace() {
            break;
        }
        if c == '\n' {
            pos.line += 1;
            pos.column = 1;
        } else {
            pos.column += 1;
        }
    }
    let trimmed = raw.trim();
    // Re-indent continuation lines relative to the block (cosmetic; keeps to_dsl stable).
    let lines: Vec<&str> = trimmed.lines().map(str::trim).collect();
    (lines.join("\n"), pos)
}

/// Parses DSL text into a syntax tree; every syntax error is collected.
///
/// Memory is linear in the text: the lexer reads it in place, and the tree has one node per
/// term. Sizes (types, relations, operands, nesting) are judged on the tree afterwards by the
/// model's limits; only parentheses are limited here, because parsing them recurses.
pub(crate) fn parse(text: &str) -> Result<ModelAst, Problems> {
    let mut parser = Parser {
        lexer: Lexer {
            text,
            at: 0,
            previous: None,
            line: 1,
            column: 1,
            depth: 0,
        },
        peeked: None,
        errors: Problems::default(),
    };
    let ast = parser.model();
    if parser.errors.is_empty() {
        Ok(ast)
    } else {
        Err(parser.errors)
    }
}

/// Prints a syntax tree as DSL text (canonical layout: two-space indents, one `define` per line).
pub(crate) fn print(ast: &ModelAst) -> String {
    let mut out = String::from("model\n  schema 1.1\n");
    for type_def in &ast.types {
        out.push_str(&format!("\ntype {}\n", type_def.name));
        if !type_def.relations.is_empty() {
            out.push_str("  relations\n");
        }
        for relation in &type_def.relations {
            out.push_str(&format!(
                "    define {}: {}\n",
                relation.name,
                print_rewrite(&relation.rewrite, &relation.directly_related, true)
            ));
        }
    }
    for condition in &ast.conditions {
        let params: Vec<String> = condition
            .params
            .iter()
            .map(|(name, param_type)| format!("{name}: {param_type}"))
            .collect();
        let body: Vec<String> = condition
            .expression
            .lines()
            .map(|line| format!("  {line}"))
            .collect();
        out.push_str(&format!(
            "\ncondition {}({}) {{\n{}\n}}\n",
            condition.name,
            params.join(", "),
            body.join("\n")
        ));
    }
    out
}

pub(crate) fn print_direct(direct: &[DirectType]) -> String {
    let items: Vec<String> = direct
        .iter()
        .map(|d| {
            let mut text = d.type_name.clone();
            if let Some(relation) = &d.relation {
                text.push('#');
                text.push_str(relation);
            } else if d.wildcard {
                text.push_str(":*");
            }
            if let Some(condition) = &d.condition {
                text.push_str(" with ");
                text.push_str(condition);
            }
            text
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn print_rewrite(rewrite: &Rewrite, direct: &[DirectType], top: bool) -> String {
    let wrap = |text: String| if top { text } else { format!("({text})") };
    match rewrite {
        Rewrite::This => print_direct(direct),
        Rewrite::Computed { relation, .. } => relation.clone(),
        Rewrite::TupleToUserset {
            tupleset, computed, ..
        } => format!("{computed} from {tupleset}"),
        Rewrite::Union(children) | Rewrite::Intersection(children) if children.len() == 1 => {
            // A one-child set operator prints as its child (the DSL has no spelling for it).
            print_rewrite(&children[0], direct, top)
        }
        Rewrite::Union(children) => wrap(
            children
                .iter()
                .map(|child| print_rewrite(child, direct, false))
                .collect::<Vec<_>>()
                .join(" or "),
        ),
        Rewrite::Intersection(children) => wrap(
            children
                .iter()
                .map(|child| print_rewrite(child, direct, false))
                .collect::<Vec<_>>()
                .join(" and "),
        ),
        Rewrite::Difference(base, subtract) => wrap(format!(
            "{} but not {}",
            print_rewrite(base, direct, false),
            print_rewrite(subtract, direct, false)
        )),
    }
}
