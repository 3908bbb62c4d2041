"""The pages' scripts and stylesheets (public): served as files so that the pages'
Content-Security-Policy needs no inline script or style. Only the names of
lablink.pages.render.STATIC_TYPES are served; anything else is 404, so no path reaches
another file."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from lablink.api.http import ApiError
from lablink.pages.render import STATIC_TYPES, static_file

router = Router()

# The URL the pages use holds the content's hash: that URL can be cached for good.
CACHE_FOR_GOOD = "public, max-age=31536000, immutable"
# Any other version asked for (an old page): check again each time.
CACHE_REVALIDATE = "no-cache"


@router.get(
    "/static/<name>",
    summary="A script or stylesheet of the pages",
    responses={200: {"description": "The file, with its Content-Type"}, 404: {"description": "No such file"}},
)
def static_asset(
    name: Annotated[str, Path(max_length=64)],
    v: Annotated[str | None, Query(max_length=64, description="the content hash the pages put in the URL")] = None,
) -> Response[str]:
    content_type = STATIC_TYPES.get(name)
    if content_type is None:
        raise ApiError(404, "There is no such file.")
    text, version = static_file(name)
    cache_control = CACHE_FOR_GOOD if v == version else CACHE_REVALIDATE
    return Response(status_code=200, content_type=content_type, body=text, headers={"Cache-Control": cache_control})
