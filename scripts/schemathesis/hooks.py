"""schemathesis hooks for scripts/schemathesis.sh.

The OpenAPI documents state every limit, pattern, format and nullability the server checks on
a request by itself. What no schema can state is a rule that relates a request to the tenant's
data (its model, roles, domains, bundle files) or to another part of the same request (a
header and the body, the token and the body, a query parameter and the path); the documents
state these in prose, with the error code the server answers. A schema-valid request refused
with one of those codes, on an operation that documents it, is not a finding of the
`positive_data_acceptance` check. Everything else is.
"""

import re

import schemathesis

DECISIONS = ("check", "checkBatch", "explain", "authzenEvaluation", "authzenEvaluations")
SEARCHES = ("authzenSearchSubject", "authzenSearchResource", "authzenSearchAction")
RELATIONS = ("relationsCheck", "relationsBatchCheck", "relationsListObjects", "relationsListUsers", "relationsExpand")
# Every forward-auth operation (each path documents every method).
FORWARD = (
    "forwardNginx", "forwardNginxPut", "forwardNginxPost", "forwardNginxDelete",
    "forwardNginxOptions", "forwardNginxPatch", "forwardNginxTrace",
    "forwardTraefik", "forwardTraefikPut", "forwardTraefikPost", "forwardTraefikDelete",
    "forwardTraefikOptions", "forwardTraefikPatch", "forwardTraefikTrace",
    "forwardEnvoyRoot", "forwardEnvoyRootPut", "forwardEnvoyRootPost", "forwardEnvoyRootDelete",
    "forwardEnvoyRootOptions", "forwardEnvoyRootPatch",
    "forwardEnvoyRootTrace", "forwardEnvoyGet", "forwardEnvoyPost", "forwardEnvoyPut",
    "forwardEnvoyDelete", "forwardEnvoyOptions", "forwardEnvoyPatch",
    "forwardEnvoyTrace",
)
# OpenFGA's queries (tag `OpenFGA`), answered on the store's model.
FGA_QUERIES = (
    "openfgaCheck", "openfgaBatchCheck", "openfgaExpand", "openfgaListObjects",
    "openfgaStreamedListObjects", "openfgaListUsers",
)

# Temporary access: making a request.
ACCESS_CREATE = ("accessRequestsCreate",)

# (operation ids, error code, pattern the message must match, why no schema can rule it out)
RULES = [
    (ACCESS_CREATE, "invalid_request", r"^name either `action` and `resource`, or a `route`",
     "a request names an action and a resource, or a route: a relation between its fields"),
    (ACCESS_CREATE, "invalid_window", None,
     "the window is checked against the server's clock, and `end` or `duration` is one of two fields"),
    (ACCESS_CREATE, "window_too_long", None, "the longest window is the tenant's bundle's `max_window`"),
    (ACCESS_CREATE, "unbound", None, "a request names a certificate or networks: a relation between two fields"),
    (ACCESS_CREATE, "no_route", None, "routes are the tenant's bundle's"),
    (DECISIONS + RELATIONS, "tenant_mismatch", r"^X-Tenant-ID and the body name different tenants$",
     "X-Tenant-ID must name the body's tenant: a relation between a header and the body"),
    (DECISIONS + SEARCHES[1:], "principal_mismatch", r"^the body names another principal than the bearer token$",
     "the body's principal must be the token's subject"),
    (SEARCHES, "invalid_page_token", None, "a page token comes from an earlier page of the same endpoint"),
    (("authzenEvaluations",), "missing_field", r"^(subject|action|resource)(\.(type|id|name))? is required$",
     "without items the defaults are one evaluation, which needs every part"),
    (("authzenEvaluations",), "invalid_request", r"^context",
     "without items the defaults are one evaluation, whose context is checked as a whole"),
    (RELATIONS, "unknown_relation", None, "types and relations are the tenant's model's"),
    (RELATIONS, "invalid_tuple", r"^invalid contextual tuple", "contextual tuples must fit the tenant's model"),
    (RELATIONS, "missing_condition_parameter", None, "a condition's parameters are declared by the tenant's model"),
    (RELATIONS, "invalid_condition_parameter", None, "a condition's parameters are declared by the tenant's model"),
    (RELATIONS, "condition_failed", None, "conditions are the tenant's model's"),
    (FORWARD, "missing_tenant", None, "without X-Tenant-ID the tenant is the one whose domain is the host"),
    (FORWARD, "invalid_header", r"^(X-SSL-Client-Cert|X-Forwarded-Tls-Client-Cert) is not a (PEM )?certificate$",
     "a certificate header must hold a certificate (its DER structure is beyond a schema)"),
    (FORWARD, "invalid_header", r"^the original path (holds '\.' or '\.\.' segments|is not UTF-8 once decoded)$",
     "the original path's segments are checked after percent-decoding"),
    (("adminDeleteTenant",), "confirmation_required", None, "`confirm` must repeat the tenant of the path"),
    (("adminAssignRole",), "unknown_role", None, "roles are the tenant's bundle's"),
    (("adminWriteTuples",), "invalid_tuple", None, "tuples must fit the tenant's model"),
    (("adminReadTuples",), "invalid_request", r"^continuation token is not one this server returned",
     "a continuation token comes from an earlier page"),
    (("adminWriteTuples",), "too_many", r"tuples in one write", "the limit counts writes and deletes together"),
    (("adminUploadBundle", "adminActivateBundle"), "invalid_bundle", None, "the files' content must be a valid bundle"),
    (("adminUploadBundle",), "tenant_mismatch", None, "tenant.yaml must name the tenant of the path"),
    (("adminQueryAudit", "adminExportAudit"), "invalid_cursor", None,
     "a cursor comes from a page of the same node's trail (`after:` for files, `at:` for the store)"),
    # OpenFGA's API answers errors in OpenFGA's shape (`{"code", "message"}`), with its codes.
    (FGA_QUERIES, "type_not_found", None, "types are the store's model's"),
    (FGA_QUERIES, "relation_not_found", None, "relations are the store's model's"),
    (FGA_QUERIES, "invalid_tuple", r"^invalid contextual tuple", "contextual tuples must fit the store's model"),
    (FGA_QUERIES, "validation_error", r"^condition `",
     "a condition and its parameters are declared by the store's model"),
    (FGA_QUERIES, "authorization_model_resolution_too_complex", None,
     "how deep a query resolves depends on the store's model and tuples"),
    (FGA_QUERIES, "authorization_model_not_found", None, "a model id is one of the store's models"),
    (FGA_QUERIES, "validation_error", r"is not the store's active model",
     "only the store's active model is evaluated, and which one that is is the store's data"),
    (("openfgaBatchCheck",), "validation_error", r"(?s)^correlation_id `.*` is empty or not unique in the batch$",
     "correlation ids must differ within a batch: a relation between its checks"),
    (("openfgaRead", "openfgaReadChanges", "openfgaListModels"), "invalid_continuation_token", None,
     "a continuation token comes from an earlier page of the same list"),
    # The changes, when a run gives the admin token (public.toml does not, see there).
    (("openfgaWrite",), "validation_error", r"^(writes|deletes)\[\d+\] ", "tuples must fit the store's model"),
    (("openfgaWrite",), "authorization_model_not_found", None, "a model id is one of the store's models"),
    (("openfgaWrite",), "validation_error", r"is not the store's active model",
     "only the store's active model is written against"),
    (("openfgaWrite",), "write_failed_due_to_invalid_input", None,
     "a tuple written must not exist yet, one deleted must exist: the store's data"),
    (("openfgaWrite",), "cannot_allow_duplicate_tuples_in_one_request", None,
     "a tuple may be named once in writes and deletes together: a relation between items"),
    (("openfgaWrite",), "exceeded_entity_limit", None, "the limit of 100 counts writes and deletes together"),
    (("openfgaWrite",), "validation_error", r"^the write has neither",
     "a write needs a tuple in writes or in deletes: a relation between two members"),
    (("openfgaWriteModel",), "invalid_authorization_model", None,
     "a model must compile, and fit the rest of the store's bundle (its actions' relations, its tuples)"),
]


def _error(response):
    try:
        body = response.json()
        # OpenFGA's API answers `{"code", "message"}`, the rest `{"error": {"code", "message"}}`.
        error = body if isinstance(body, dict) and "error" not in body else body["error"]
        return error["code"], error["message"]
    except Exception:  # noqa: BLE001 - a body that is not our error shape is a finding
        return None, None


# The forward-auth endpoints check the proxy's headers before the caller's token: a request the
# proxy garbled is answered 400 (the proxy's fault) whoever the caller is, so a missing token
# does not turn that 400 into a 401 (`missing_required_header` expects 401).
FORWARD_HEADER_CODES = ("invalid_header", "missing_header")


# The gateway's applications are the server's configuration (scripts/schemathesis.sh has one):
# an unlock that names an application (a string, as the schema wants) names that one; the rest
# of the body, and bodies meant to break the schema, are as generated.
GATEWAY_APP = "shop.example"


@schemathesis.hook
def map_body(context, body):
    operation = getattr(context, "operation", None)
    definition = getattr(operation, "definition", None)
    raw = getattr(definition, "raw", {}) if definition is not None else {}
    if (
        raw.get("operationId") == "adminGatewayUnlock"
        and isinstance(body, dict)
        and isinstance(body.get("app"), str)
    ):
        body["app"] = GATEWAY_APP
    return body


@schemathesis.hook
def filter_failure(context, failure, case, response):
    operation = case.operation.definition.raw.get("operationId")
    if getattr(failure, "code", None) == "ST203" and operation in FORWARD:
        code, _ = _error(response)
        return not (response.status_code == 400 and code in FORWARD_HEADER_CODES)
    if getattr(failure, "code", None) != "ST202":
        return True
    code, message = _error(response)
    for operations, rule_code, pattern, _why in RULES:
        if operation in operations and code == rule_code and (pattern is None or re.search(pattern, message)):
            return False
    return True
