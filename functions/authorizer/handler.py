"""The REQUEST authorizer of the REST API: admin HTTP Basic or a VM's bearer token, by the
auth kind lablink.routes gives the route (see lablink.auth)."""

from lablink.auth import Unauthorized, authorize
from lablink.observability import logged, logger
from lablink.runtime import database


@logged()
def handler(event, context):
    try:
        return authorize(event, lambda token_hash: database("authorizer").vms.get_hostname_by_token_hash(token_hash))
    except Unauthorized:
        logger.info("refused", extra={"resource": event.get("resource"), "method": event.get("httpMethod")})
        raise
