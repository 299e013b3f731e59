-- wrk script for the PATCH variants of benches/load.sh: a typical Entra ID PATCH
-- (tests/fixtures/idp/entra-update-user-multivalued.json), body passed in WRK_BODY by the
-- script so this file needs no JSON escaping. The Authorization header comes from wrk -H.
wrk.method = "PATCH"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/scim+json"
