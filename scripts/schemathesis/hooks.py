"""schemathesis hooks for scripts/schemathesis.sh.

The OpenAPI documents state every limit, pattern, format and nullability the server checks on
its own. What no schema can state is a rule that relates a request to the tenant's data or to
another part of the same request; the documents say these in prose, with the error code the
server answers. A schema-valid request refused with one of those codes, on an operation that
documents it, is not a finding of the `positive_data_acceptance` check. Anything else is.
"""

import schemathesis

# operationId -> {error code: why a schema cannot rule the request out}.
DATA_DEPENDENT = {}


def _error_code(response):
    try:
        return response.json()["error"]["code"]
    except Exception:  # noqa: BLE001 - any body that is not our error shape is a finding
        return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if getattr(failure, "code", None) != "ST202":
        return True
    operation_id = case.operation.definition.raw.get("operationId")
    allowed = DATA_DEPENDENT.get(operation_id, {})
    return _error_code(response) not in allowed
