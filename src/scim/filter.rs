//! The SCIM filter language (RFC 7644 §3.4.2.2), used by searches and inside PATCH value paths.
//!
//! Why a full parser: the gate must answer 400 `invalidFilter` for anything the upstream could
//! misread. An upstream that ignores a filter it does not understand returns an *unfiltered*
//! list, and IdPs that look users up by `userName eq …` then create duplicates.
//!
//! Grammar (RFC 7644 Figure 1), with precedence grouping > `not` > `and` > `or`:
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER
//! compValue = false / null / true / number / string     ; JSON literals (RFC 7159)
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! ```
//! Keywords and operators are case-insensitive; whitespace is lenient (any run of spaces or
//! tabs, optional around parentheses and brackets). [`fmt::Display`] prints a canonical form that
//! parses back to the same tree.

use std::fmt;

/// Deepest nesting of parentheses, `not` and value paths accepted. Recursion on hostile input
/// must not overflow the stack (a panic in a proxy thread).
const MAX_DEPTH: usize = 32;

/// The default bound on comparison terms in one filter (`policy.max_filter_terms`). A 1 MiB
/// body holds ~100 000 terms; each costs a node, so the bound keeps both the work and the
/// memory of one filter small, whatever the body size.
pub const DEFAULT_MAX_TERMS: usize = 1000;

/// A parsed filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `attrPath op value`
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The operator.
        op: CompareOp,
        /// The value compared with.
        value: Literal,
    },
    /// `attrPath pr`
    Present(AttrPath),
    /// `not (f)`
    Not(Box<Filter>),
    /// `a and b and …`: flat, two or more operands. A chain of terms is one node with a list,
    /// never a left-deep tree, so the depth of a filter (and the recursion of its drop, its
    /// printing and every walk over it) is bounded by the bracket nesting (`MAX_DEPTH`), not by
    /// the number of terms an attacker can fit in a body.
    And(Vec<Filter>),
    /// `a or b or …`: flat, two or more operands (see [`Filter::And`]).
    Or(Vec<Filter>),
    /// `attrPath[f]`, e.g. `emails[type eq "work" and value co "@example.com"]`
    ValuePath {
        /// The multi-valued attribute filtered.
        path: AttrPath,
        /// The filter on its elements.
        filter: Box<Filter>,
    },
}

/// `[URI ":"] ATTRNAME ["." ATTRNAME]`, names kept as written (comparisons are case-insensitive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN prefix, if any.
    pub urn: Option<String>,
    /// The attribute name.
    pub attr: String,
    /// The sub-attribute of `attr.sub`.
    pub sub: Option<String>,
}

/// The comparison operators of RFC 7644 Table 3 (except `pr`, which takes no value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// contains
    Co,
    /// starts with
    Sw,
    /// ends with
    Ew,
    /// greater than
    Gt,
    /// less than
    Lt,
    /// greater than or equal to
    Ge,
    /// less than or equal to
    Le,
}

/// A comparison value. Numbers keep their JSON text so that printing loses nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Literal {
    /// A JSON string, unescaped.
    String(String),
    /// A JSON number, as written.
    Number(String),
    /// `true`
    True,
    /// `false`
    False,
    /// `null`
    Null,
}

/// Why a filter did not parse, with the byte offset where it went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at offset {offset}")]
pub struct FilterError {
    /// The byte offset in the filter where parsing stopped.
    pub offset: usize,
    /// What was expected there.
    pub message: String,
    /// The filter is well-formed so far but has more terms than allowed.
    pub too_many_terms: bool,
}

/// Parse a whole filter string with at most [`DEFAULT_MAX_TERMS`] terms.
pub fn parse_filter(s: &str) -> Result<Filter, FilterError> {
    parse_filter_limited(s, DEFAULT_MAX_TERMS)
}

/// Parse a whole filter string with at most `max_terms` comparison (or `pr`) terms.
pub fn parse_filter_limited(s: &str, max_terms: usize) -> Result<Filter, FilterError> {
    let mut c = Cursor::new(s, max_terms);
    let f = c.filter(0)?;
    c.skip_ws();
    if !c.at_end() {
        return Err(c.err("unexpected trailing input"));
    }
    Ok(f)
}

impl CompareOp {
    fn from_word(w: &str) -> Option<CompareOp> {
        const OPS: [(&str, CompareOp); 9] = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("lt", CompareOp::Lt),
            ("ge", CompareOp::Ge),
            ("le", CompareOp::Le),
        ];
        OPS.iter()
            .find(|(name, _)| w.eq_ignore_ascii_case(name))
            .map(|(_, op)| *op)
    }

    fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Lt => "lt",
            CompareOp::Ge => "ge",
            CompareOp::Le => "le",
        }
    }
}

/// A byte cursor shared with the PATCH path parser (`path.rs`), which parses the filter
/// between brackets with the same rules.
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
    /// Terms the rest of the filter may still hold (`policy.max_filter_terms`).
    terms_left: usize,
}

pub(crate) fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'$'
}

pub(crate) fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'$'
}

/// ATTRNAME = ALPHA *(nameChar) (RFC 7643 §2.1); `$ref` is the one name starting with `$`.
pub(crate) fn valid_attr_name(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(&first) if is_name_start(first) => b[1..].iter().all(|&c| is_name_char(c)),
        _ => false,
    }
}

/// Split `name` or `name.sub` (at most one dot) into validated names.
pub(crate) fn split_attr_sub(s: &str) -> Option<(String, Option<String>)> {
    let mut parts = s.split('.');
    let attr = parts.next()?;
    let sub = parts.next();
    if parts.next().is_some() || !valid_attr_name(attr) {
        return None;
    }
    match sub {
        Some(sub) if !valid_attr_name(sub) => None,
        _ => Some((attr.to_string(), sub.map(str::to_string))),
    }
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str, max_terms: usize) -> Self {
        Cursor::at(s, 0, max_terms)
    }

    pub(crate) fn at(s: &'a str, pos: usize, max_terms: usize) -> Self {
        Cursor {
            s,
            pos,
            terms_left: max_terms,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn err(&self, message: &str) -> FilterError {
        FilterError {
            offset: self.pos,
            message: message.to_string(),
            too_many_terms: false,
        }
    }

    pub(crate) fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The word (run of name characters) at the cursor, without consuming it.
    fn peek_word(&self) -> &'a str {
        let bytes = self.s.as_bytes();
        let mut end = self.pos;
        while end < bytes.len() && is_name_char(bytes[end]) {
            end += 1;
        }
        self.s.get(self.pos..end).unwrap_or("")
    }

    /// Consume `kw` (case-insensitive) if it is the whole next word.
    fn eat_keyword(&mut self, kw: &str) -> bool {
        let w = self.peek_word();
        if w.eq_ignore_ascii_case(kw) {
            self.pos += w.len();
            true
        } else {
            false
        }
    }

    /// `or` level: a chain of `and` terms, collected into one flat node.
    pub(crate) fn filter(&mut self, depth: usize) -> Result<Filter, FilterError> {
        if depth > MAX_DEPTH {
            return Err(self.err("filter nested too deeply"));
        }
        let first = self.and_term(depth)?;
        let rest = self.chain("or", |c| c.and_term(depth))?;
        Ok(flat(first, rest, Filter::Or))
    }

    fn and_term(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let first = self.unary(depth)?;
        let rest = self.chain("and", |c| c.unary(depth))?;
        Ok(flat(first, rest, Filter::And))
    }

    /// The operands after the first of a `kw`-separated chain (empty when there is none).
    fn chain(
        &mut self,
        kw: &str,
        mut operand: impl FnMut(&mut Self) -> Result<Filter, FilterError>,
    ) -> Result<Vec<Filter>, FilterError> {
        let mut rest = Vec::new();
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.eat_keyword(kw) {
                self.skip_ws();
                rest.push(operand(self)?);
            } else {
                self.pos = save;
                return Ok(rest);
            }
        }
    }

    /// Counts one term against `max_filter_terms`.
    fn take_term(&mut self) -> Result<(), FilterError> {
        if self.terms_left == 0 {
            return Err(FilterError {
                too_many_terms: true,
                ..self
                    .err("the filter has more terms than the gate allows (policy.max_filter_terms)")
            });
        }
        self.terms_left -= 1;
        Ok(())
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, FilterError> {
        self.skip_ws();
        if self.eat(b'(') {
            return self.group(depth);
        }
        let save = self.pos;
        if self.eat_keyword("not") {
            self.skip_ws();
            if self.eat(b'(') {
                return Ok(Filter::Not(Box::new(self.group(depth)?)));
            }
            // `not` not followed by "(" is an attribute named "not".
            self.pos = save;
        }
        self.attr_exp(depth)
    }

    /// After an opening parenthesis: a filter and the closing one.
    fn group(&mut self, depth: usize) -> Result<Filter, FilterError> {
        self.skip_ws();
        let f = self.filter(depth + 1)?;
        self.skip_ws();
        if !self.eat(b')') {
            return Err(self.err("expected ')'"));
        }
        Ok(f)
    }

    fn attr_exp(&mut self, depth: usize) -> Result<Filter, FilterError> {
        self.take_term()?;
        let path = self.attr_path()?;
        if self.eat(b'[') {
            self.skip_ws();
            let inner = self.filter(depth + 1)?;
            self.skip_ws();
            if !self.eat(b']') {
                return Err(self.err("expected ']'"));
            }
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(inner),
            });
        }
        if !self.skip_ws() {
            return Err(self.err("expected an operator after the attribute path"));
        }
        let word = self.peek_word();
        if word.eq_ignore_ascii_case("pr") {
            self.pos += word.len();
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::from_word(word).ok_or_else(|| self.err("unknown operator"))?;
        self.pos += word.len();
        if !self.skip_ws() {
            return Err(self.err("expected a value after the operator"));
        }
        let value = self.literal()?;
        Ok(Filter::Compare { path, op, value })
    }

    /// `[URI ":"] ATTRNAME ["." ATTRNAME]`. Attribute names cannot contain ':', so the URI ends
    /// at the last ':' of the token (the URN itself has dots, as in `…:2.0:User`).
    fn attr_path(&mut self) -> Result<AttrPath, FilterError> {
        let start = self.pos;
        let bytes = self.s.as_bytes();
        let mut end = start;
        while end < bytes.len()
            && (is_name_char(bytes[end]) || bytes[end] == b':' || bytes[end] == b'.')
        {
            end += 1;
        }
        let token = self.s.get(start..end).unwrap_or("");
        if token.is_empty() {
            return Err(self.err("expected an attribute path"));
        }
        let (urn, rest) = match token.rfind(':') {
            Some(i) => {
                let urn = &token[..i];
                if !starts_with_ci(urn, "urn:") {
                    return Err(self.err("an attribute path prefix must be a URN"));
                }
                (Some(urn.to_string()), &token[i + 1..])
            }
            None => (None, token),
        };
        let (attr, sub) = split_attr_sub(rest).ok_or_else(|| self.err("invalid attribute name"))?;
        self.pos = end;
        Ok(AttrPath { urn, attr, sub })
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        match self.peek() {
            Some(b'"') => self.string_literal().map(Literal::String),
            Some(b'-' | b'0'..=b'9') => self.number_literal().map(Literal::Number),
            _ => {
                let w = self.peek_word();
                let lit = if w.eq_ignore_ascii_case("true") {
                    Literal::True
                } else if w.eq_ignore_ascii_case("false") {
                    Literal::False
                } else if w.eq_ignore_ascii_case("null") {
                    Literal::Null
                } else {
                    return Err(self.err("expected a string, number, true, false or null"));
                };
                self.pos += w.len();
                Ok(lit)
            }
        }
    }

    /// A JSON string: find the closing quote, then let serde_json decode the escapes.
    fn string_literal(&mut self) -> Result<String, FilterError> {
        let bytes = self.s.as_bytes();
        let start = self.pos;
        let mut i = start + 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    let raw = self.s.get(start..=i).unwrap_or("");
                    return match serde_json::from_str::<String>(raw) {
                        Ok(v) => {
                            self.pos = i + 1;
                            Ok(v)
                        }
                        Err(_) => Err(self.err("invalid string literal")),
                    };
                }
                _ => i += 1,
            }
        }
        Err(self.err("unterminated string"))
    }

    /// A JSON number (RFC 8259 §6), kept as text.
    fn number_literal(&mut self) -> Result<String, FilterError> {
        let bytes = self.s.as_bytes();
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while *i < bytes.len() && bytes[*i].is_ascii_digit() {
                *i += 1;
            }
            *i - from
        };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        let n = digits(&mut i);
        if n == 0 || (n > 1 && bytes[int_start] == b'0') {
            return Err(self.err("invalid number"));
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if digits(&mut i) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if bytes.get(i).is_some_and(|&b| is_name_char(b)) {
            return Err(self.err("invalid number"));
        }
        self.pos = i;
        Ok(self.s.get(start..i).unwrap_or("").to_string())
    }
}

/// `first` alone, or `first` and `rest` as one n-ary node built by `node`. A bracketed first
/// operand of the same kind is spliced in: `(a or b) or c` is `a or b or c`, as it was when the
/// operators were left-associative binary nodes.
fn flat(first: Filter, rest: Vec<Filter>, node: fn(Vec<Filter>) -> Filter) -> Filter {
    if rest.is_empty() {
        return first;
    }
    let mut operands = match (first, node(Vec::new())) {
        (Filter::And(v), Filter::And(_)) | (Filter::Or(v), Filter::Or(_)) => v,
        (first, _) => vec![first],
    };
    operands.extend(rest);
    node(operands)
}

pub(crate) fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// JSON string escaping for [`Literal::String`] (RFC 8259 §7), infallible unlike serde_json.
pub(crate) fn write_json_string(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for ch in s.chars() {
        match ch {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write_json_string(f, s),
            Literal::Number(n) => f.write_str(n),
            Literal::True => f.write_str("true"),
            Literal::False => f.write_str("false"),
            Literal::Null => f.write_str("null"),
        }
    }
}

impl Filter {
    /// Binding strength: or < and < everything else.
    fn precedence(&self) -> u8 {
        match self {
            Filter::Or(..) => 1,
            Filter::And(..) => 2,
            _ => 3,
        }
    }

    fn fmt_child(&self, f: &mut fmt::Formatter<'_>, parens: bool) -> fmt::Result {
        if parens {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }

    /// A later operand of the same precedence needs parentheses: without them it would parse
    /// back into this node's own list (`a and (b and c)` is a node inside a node). The first
    /// never is one (the parser splices it in, see `flat`).
    fn fmt_chain(&self, f: &mut fmt::Formatter<'_>, operands: &[Filter], kw: &str) -> fmt::Result {
        let p = self.precedence();
        for (i, child) in operands.iter().enumerate() {
            if i > 0 {
                write!(f, " {kw} ")?;
                child.fmt_child(f, child.precedence() <= p)?;
            } else {
                child.fmt_child(f, child.precedence() < p)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {} {value}", op.as_str()),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::And(operands) => self.fmt_chain(f, operands, "and"),
            Filter::Or(operands) => self.fmt_chain(f, operands, "or"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}
