//! TEMPORARY stub of the scim module API (replaced by src/scim when it lands).
use std::collections::HashMap;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect { Normalize, Tolerate, Strict }
#[derive(Debug, Clone)]
pub enum ExtensionAllow { All, Attrs(Vec<String>) }
#[derive(Debug, Clone)]
pub struct PolicySpec { pub dialect: Dialect, pub users_updatable: Vec<String>, pub groups_updatable: Vec<String>, pub extensions: Vec<(String, ExtensionAllow)> }
#[derive(Debug, thiserror::Error)]
#[error("bad policy")]
pub struct PolicySpecError;
pub struct Policy;
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource { Users, Groups }
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMethod { Post, Put, Patch }
pub struct Request<'a> { pub resource: Resource, pub method: WriteMethod, pub id: Option<&'a str>, pub body: &'a [u8], pub domains: &'a [String] }
pub struct Prepared { needs: Vec<(Resource, String)> }
pub struct Checked { pub body: Option<Vec<u8>> }
#[derive(Debug)]
pub struct Rejection { pub status: u16, pub scim_type: Option<&'static str>, pub detail: String, pub reason: RejectReason }
#[derive(Debug)]
pub enum RejectReason { InvalidJson }
impl RejectReason { pub fn label(&self) -> &'static str { "invalid_json" } }
impl Policy {
    pub fn compile(_s: &PolicySpec) -> Result<Policy, PolicySpecError> { Ok(Policy) }
    pub fn prepare(&self, _r: &Request<'_>) -> Result<Prepared, Rejection> { Ok(Prepared { needs: vec![] }) }
    pub fn prepare_bulk(&self, _b: &[u8], _d: &[String]) -> Result<Prepared, Rejection> { Ok(Prepared { needs: vec![] }) }
    pub fn check_search(&self, _b: &[u8]) -> Result<(), Rejection> { Ok(()) }
}
impl Prepared {
    pub fn needs(&self) -> &[(Resource, String)] { &self.needs }
    pub fn finish(self, _c: &HashMap<(Resource, String), serde_json::Value>) -> Result<Checked, Rejection> { Ok(Checked { body: None }) }
}
