//! Rendering the structures to JSON text: member order, the duplicate, escapes, whitespace.

use std::fmt::Write as _;

use super::*;

/// A member of a rendered object.
#[derive(Clone, Debug)]
pub(super) struct Field {
    pub(super) name: String,
    /// The name written with `\u` escapes whatever the layout says.
    pub(super) escape_name: bool,
    pub(super) value: Json,
}

pub(super) fn field(name: &str, value: Json) -> Field {
    Field {
        name: name.to_owned(),
        escape_name: false,
        value,
    }
}

/// Puts the fields in the order the knobs say and adds the duplicate.
pub(super) fn arrange(
    mut fields: Vec<Field>,
    order: u8,
    duplicate: Option<&Duplicate>,
) -> Vec<Field> {
    if !fields.is_empty() {
        let len = fields.len();
        fields.rotate_left(usize::from(order) % len);
        if order >= 128 {
            fields.reverse();
        }
    }
    if let Some(dup) = duplicate
        && !fields.is_empty()
    {
        let original = &fields[usize::from(dup.member) % fields.len()];
        let copy = Field {
            name: original.name.clone(),
            escape_name: dup.escape_name,
            value: dup.value.clone().unwrap_or_else(|| original.value.clone()),
        };
        let at = usize::from(dup.at) % (fields.len() + 1);
        fields.insert(at, copy);
    }
    fields
}

pub(super) fn render(fields: &[Field], layout: Layout) -> String {
    let mut out = String::new();
    out.push('{');
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match layout.space {
            Space::Compact => {}
            Space::Spaced if i > 0 => out.push(' '),
            Space::Spaced => {}
            Space::Lines => out.push_str("\n\t"),
        }
        let name_escape = if f.escape_name || layout.escape_names {
            Escape::All
        } else {
            Escape::Minimal
        };
        write_str(&mut out, &f.name, name_escape);
        out.push(':');
        if !matches!(layout.space, Space::Compact) {
            out.push(' ');
        }
        write_value(&mut out, &f.value, layout);
    }
    if matches!(layout.space, Space::Lines) {
        out.push_str("\r\n");
    }
    out.push('}');
    out
}

pub(super) fn write_value(out: &mut String, value: &Json, layout: Layout) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Num(n) => out.push_str(&n.text),
        Json::Str(s) => write_str(out, s, layout.escape),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                    if !matches!(layout.space, Space::Compact) {
                        out.push(' ');
                    }
                }
                write_value(out, item, layout);
            }
            out.push(']');
        }
        Json::Obj(members) => {
            let fields: Vec<Field> = members
                .iter()
                .map(|(name, value)| field(name, value.clone()))
                .collect();
            out.push_str(&render(&fields, layout));
        }
    }
}

pub(super) fn write_str(out: &mut String, s: &str, escape: Escape) {
    out.push('"');
    for c in s.chars() {
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' if escape == Escape::Short => Some("\\n"),
            '\t' if escape == Escape::Short => Some("\\t"),
            '\r' if escape == Escape::Short => Some("\\r"),
            '\u{8}' if escape == Escape::Short => Some("\\b"),
            '\u{c}' if escape == Escape::Short => Some("\\f"),
            '/' if escape == Escape::Short => Some("\\/"),
            _ => None,
        };
        if let Some(short) = short
            && escape != Escape::All
        {
            out.push_str(short);
        } else if c < ' ' || escape == Escape::All || (escape == Escape::NonAscii && !c.is_ascii())
        {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04X}");
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

impl HeaderSpec {
    pub(super) fn fields(&self, signer: SignerChoice) -> Vec<Field> {
        let mut fields = Vec::new();
        let alg = match &self.alg {
            AlgSpec::Signer => Some(Json::Str(signer.alg_name().to_owned())),
            AlgSpec::Named(i) => Some(Json::Str(pick(&ALG_NAMES, *i).to_owned())),
            AlgSpec::Any(s) => Some(Json::Str(s.clone())),
            AlgSpec::Missing => None,
            AlgSpec::Json(j) => Some(j.clone()),
        };
        fields.extend(alg.map(|v| field("alg", v)));
        let kid = match &self.kid {
            KidSpec::Signer => Some(Json::Str(signer.kid().to_owned())),
            KidSpec::Named(i) => Some(Json::Str(pick(&KID_NAMES, *i).to_owned())),
            KidSpec::Any(s) => Some(Json::Str(s.clone())),
            KidSpec::Missing => None,
            KidSpec::Json(j) => Some(j.clone()),
        };
        fields.extend(kid.map(|v| field("kid", v)));
        let typ = match &self.typ {
            TypSpec::AtJwt(i) => Some(Json::Str(pick(&AT_JWT, *i).to_owned())),
            TypSpec::Missing => None,
            TypSpec::Named(i) => Some(Json::Str(pick(&OTHER_TYPES, *i).to_owned())),
            TypSpec::Any(s) => Some(Json::Str(s.clone())),
            TypSpec::Json(j) => Some(j.clone()),
        };
        fields.extend(typ.map(|v| field("typ", v)));
        if let Some(crit) = &self.crit {
            let value = match crit {
                CritSpec::Names(names) => {
                    Json::Arr(names.iter().map(|n| Json::Str(n.name())).collect())
                }
                CritSpec::Json(j) => j.clone(),
            };
            fields.push(field("crit", value));
        }
        if let Some(b64) = &self.b64 {
            fields.push(field("b64", b64.clone()));
        }
        for (name, value) in &self.extras {
            fields.push(field(&name.name(), value.clone()));
        }
        arrange(fields, self.order, self.duplicate.as_ref())
    }
}

impl ClaimsSpec {
    pub(super) fn fields(&self) -> Vec<Field> {
        fn member<T>(fields: &mut Vec<Field>, name: &str, m: &Member<T>, f: impl Fn(&T) -> Json) {
            match m {
                Member::Typical(t) => fields.push(field(name, f(t))),
                Member::Absent => {}
                Member::Json(j) => fields.push(field(name, j.clone())),
            }
        }
        fn optional<T>(
            fields: &mut Vec<Field>,
            name: &str,
            m: &Optional<T>,
            f: impl Fn(&T) -> Json,
        ) {
            match m {
                Optional::Absent => {}
                Optional::Typical(t) => fields.push(field(name, f(t))),
                Optional::Json(j) => fields.push(field(name, j.clone())),
            }
        }
        let items = |items: &Vec<ItemSpec>| Json::Arr(items.iter().map(ItemSpec::json).collect());
        let mut fields = Vec::new();
        member(&mut fields, "iss", &self.iss, |iss| match iss {
            IssSpec::Accepted(other) => {
                Json::Str(if *other { OTHER_ISSUER } else { ISSUER }.to_owned())
            }
            IssSpec::Text(text) => Json::Str(text.text()),
        });
        member(&mut fields, "sub", &self.sub, |t| Json::Str(t.text()));
        member(&mut fields, "aud", &self.aud, |aud| match aud {
            AudSpec::One(item) => item.json(),
            AudSpec::Many(list) => items(list),
        });
        member(&mut fields, "exp", &self.exp, DateSpec::json);
        optional(&mut fields, "nbf", &self.nbf, DateSpec::json);
        member(&mut fields, "iat", &self.iat, DateSpec::json);
        member(&mut fields, "jti", &self.jti, |t| Json::Str(t.text()));
        optional(&mut fields, "roles", &self.roles, items);
        optional(&mut fields, "realm_access", &self.realm_access, |realm| {
            let mut members = Vec::new();
            match &realm.roles {
                Member::Typical(list) => members.push(("roles".to_owned(), items(list))),
                Member::Absent => {}
                Member::Json(j) => members.push(("roles".to_owned(), j.clone())),
            }
            for (name, value) in &realm.extras {
                members.push((name.name(), value.clone()));
            }
            Json::Obj(members)
        });
        optional(&mut fields, "scope", &self.scope, |s| Json::Str(s.text()));
        optional(&mut fields, "scp", &self.scp, |scp| match scp {
            ScpSpec::List(list) => Json::Arr(
                list.iter()
                    .map(|item| match item {
                        ScpItem::Token(t) => Json::Str(t.text()),
                        ScpItem::Json(j) => j.clone(),
                    })
                    .collect(),
            ),
            ScpSpec::Delimited(s) => Json::Str(s.text()),
        });
        for (name, value) in &self.extras {
            fields.push(field(&name.name(), value.clone()));
        }
        arrange(fields, self.order, self.duplicate.as_ref())
    }
}
