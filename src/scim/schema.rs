//! The RFC 7643 resource model the checks need: User (§4.1), Group (§4.2), the common
//! attributes (§3.1) and the Enterprise User extension (§4.3), with the characteristics of
//! §2.2 (type, multiValued, required, mutability, caseExact, sub-attributes) as §8.7.1 lists
//! them.
//!
//! Deviation from §8.7.1, on purpose: `members.display` is treated as readOnly (the server
//! derives it from the member), and `manager.displayName` is readOnly as §4.3 says.

/// RFC 7643 §2.3 data types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    // RFC 7643 §2.3 lists them and the type check handles them; no attribute of the built-in
    // schemas has them yet.
    #[allow(dead_code)]
    Decimal,
    #[allow(dead_code)]
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

/// RFC 7643 §2.2 mutability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

/// One attribute definition.
#[derive(Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi: bool,
    pub required: bool,
    pub mutability: Mutability,
    pub case_exact: bool,
    pub subs: &'static [AttrDef],
}

impl AttrDef {
    /// Find a sub-attribute, case-insensitively (RFC 7643 §2.1).
    pub fn sub(&self, name: &str) -> Option<&'static AttrDef> {
        find(self.subs, name)
    }

    pub fn read_only(&self) -> bool {
        self.mutability == Mutability::ReadOnly
    }
}

/// Find an attribute in a list, case-insensitively.
pub fn find(list: &'static [AttrDef], name: &str) -> Option<&'static AttrDef> {
    list.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// Whether `def` is the Enterprise User `manager` (RFC 7643 §4.3), which Entra sends as a bare
/// id string (deviation `manager-string`, `docs/scim-checks.md`).
/// The cheap tests come first: the PUT comparison asks this of every string value.
pub(crate) fn is_manager(def: &AttrDef) -> bool {
    def.ty == AttrType::Complex
        && def.name == "manager"
        && find(ENTERPRISE_ATTRS, "manager").is_some_and(|m| std::ptr::eq(m, def))
}

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const BULK_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const SEARCH_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

use AttrType::*;
use Mutability::*;

const fn attr(name: &'static str, ty: AttrType) -> AttrDef {
    AttrDef {
        name,
        ty,
        multi: false,
        required: false,
        mutability: ReadWrite,
        case_exact: false,
        subs: &[],
    }
}

const fn complex(name: &'static str, subs: &'static [AttrDef]) -> AttrDef {
    AttrDef {
        subs,
        ..attr(name, Complex)
    }
}

const fn multi(name: &'static str, subs: &'static [AttrDef]) -> AttrDef {
    AttrDef {
        multi: true,
        ..complex(name, subs)
    }
}

const fn read_only(def: AttrDef) -> AttrDef {
    AttrDef {
        mutability: ReadOnly,
        ..def
    }
}

const fn immutable(def: AttrDef) -> AttrDef {
    AttrDef {
        mutability: Immutable,
        ..def
    }
}

const fn case_exact(def: AttrDef) -> AttrDef {
    AttrDef {
        case_exact: true,
        ..def
    }
}

const fn required(def: AttrDef) -> AttrDef {
    AttrDef {
        required: true,
        ..def
    }
}

/// The sub-attributes shared by emails, phoneNumbers, ims, photos, entitlements, roles
/// (RFC 7643 §2.4 "multi-valued attributes").
const VALUE_SUBS: &[AttrDef] = &[
    attr("value", String),
    attr("display", String),
    attr("type", String),
    attr("primary", Boolean),
];

const PHOTO_SUBS: &[AttrDef] = &[
    attr("value", Reference),
    attr("display", String),
    attr("type", String),
    attr("primary", Boolean),
];

const CERT_SUBS: &[AttrDef] = &[
    attr("value", Binary),
    attr("display", String),
    attr("type", String),
    attr("primary", Boolean),
];

const NAME_SUBS: &[AttrDef] = &[
    attr("formatted", String),
    attr("familyName", String),
    attr("givenName", String),
    attr("middleName", String),
    attr("honorificPrefix", String),
    attr("honorificSuffix", String),
];

const ADDRESS_SUBS: &[AttrDef] = &[
    attr("formatted", String),
    attr("streetAddress", String),
    attr("locality", String),
    attr("region", String),
    attr("postalCode", String),
    attr("country", String),
    attr("type", String),
    attr("primary", Boolean),
];

const USER_GROUP_SUBS: &[AttrDef] = &[
    read_only(attr("value", String)),
    read_only(attr("$ref", Reference)),
    read_only(attr("display", String)),
    read_only(attr("type", String)),
];

const META_SUBS: &[AttrDef] = &[
    read_only(case_exact(attr("resourceType", String))),
    read_only(attr("created", DateTime)),
    read_only(attr("lastModified", DateTime)),
    read_only(case_exact(attr("location", Reference))),
    read_only(case_exact(attr("version", String))),
];

/// RFC 7643 §4.1 plus the common attributes of §3.1.
pub static USER_ATTRS: &[AttrDef] = &[
    read_only(case_exact(attr("id", String))),
    case_exact(attr("externalId", String)),
    read_only(complex("meta", META_SUBS)),
    required(attr("userName", String)),
    complex("name", NAME_SUBS),
    attr("displayName", String),
    attr("nickName", String),
    attr("profileUrl", Reference),
    attr("title", String),
    attr("userType", String),
    attr("preferredLanguage", String),
    attr("locale", String),
    attr("timezone", String),
    attr("active", Boolean),
    AttrDef {
        mutability: WriteOnly,
        case_exact: true,
        ..attr("password", String)
    },
    multi("emails", VALUE_SUBS),
    multi("phoneNumbers", VALUE_SUBS),
    multi("ims", VALUE_SUBS),
    multi("photos", PHOTO_SUBS),
    multi("addresses", ADDRESS_SUBS),
    read_only(multi("groups", USER_GROUP_SUBS)),
    multi("entitlements", VALUE_SUBS),
    multi("roles", VALUE_SUBS),
    multi("x509Certificates", CERT_SUBS),
];

const MEMBER_SUBS: &[AttrDef] = &[
    immutable(case_exact(attr("value", String))),
    immutable(case_exact(attr("$ref", Reference))),
    immutable(attr("type", String)),
    read_only(attr("display", String)),
];

/// RFC 7643 §4.2 plus the common attributes.
pub static GROUP_ATTRS: &[AttrDef] = &[
    read_only(case_exact(attr("id", String))),
    case_exact(attr("externalId", String)),
    read_only(complex("meta", META_SUBS)),
    required(attr("displayName", String)),
    multi("members", MEMBER_SUBS),
];

const MANAGER_SUBS: &[AttrDef] = &[
    attr("value", String),
    attr("$ref", Reference),
    read_only(attr("displayName", String)),
];

/// RFC 7643 §4.3.
pub static ENTERPRISE_ATTRS: &[AttrDef] = &[
    attr("employeeNumber", String),
    attr("costCenter", String),
    attr("organization", String),
    attr("division", String),
    attr("department", String),
    complex("manager", MANAGER_SUBS),
];
