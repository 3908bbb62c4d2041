"""The REST API: every route of API.md, served by its function, with its auth kind; the REQUEST
authorizer; the gateway's own answers in our JSON error shape; access logs, X-Ray and throttling on the stage."""

from __future__ import annotations

import json

from lablink.routes import MIN_COMPRESSION_BYTES, ROUTES

# API.md, restated: (method, path) -> auth kind. The route table must agree with it.
API_CONTRACT = {
    ("GET", "/"): "public",
    ("GET", "/api/unassigned_vms_count"): "public",
    ("POST", "/api/request_vm"): "public",
    ("GET", "/static/{name}"): "public",
    ("GET", "/openapi.json"): "public",
    ("GET", "/admin"): "admin",
    ("POST", "/api/launch"): "admin",
    ("GET", "/api/operations/{operation_id}"): "admin",
    ("POST", "/api/destroy"): "admin",
    ("GET", "/api/vms"): "admin",
    ("GET", "/api/vm-status"): "admin",
    ("GET", "/api/vm-status/{hostname}"): "admin",
    ("GET", "/api/status"): "admin",
    ("GET", "/api/vm-logs/{hostname}"): "admin",
    ("GET", "/api/export-metrics"): "admin",
    ("POST", "/api/vms/{hostname}/recycle"): "admin",
    ("POST", "/api/vms/{hostname}/reboot"): "admin",
    ("GET", "/api/history"): "admin",
    ("GET", "/api/pool"): "admin",
    ("PUT", "/api/pool"): "admin",
    ("GET", "/api/pool/status"): "admin",
    ("GET", "/api/access"): "admin",
    ("PUT", "/api/access"): "admin",
    ("POST", "/api/vm-status"): "vm",
    ("POST", "/api/vm-metrics/{hostname}"): "vm",
    ("POST", "/api/gpu_health"): "vm",
    ("POST", "/api/update_inuse_status"): "vm",
}


def _paths(synth) -> dict[str, str]:
    """Logical id of each API resource (and of the root) -> its path."""
    resources = synth.resources("Api", "AWS::ApiGateway::Resource")
    paths: dict[str, str] = {}

    def path_of(value) -> str:
        if "Fn::GetAtt" in value:  # the root resource
            return ""
        lid = value["Ref"]
        if lid not in paths:
            props = resources[lid]["Properties"]
            paths[lid] = f"{path_of(props['ParentId'])}/{props['PathPart']}"
        return paths[lid]

    return {lid: path_of({"Ref": lid}) for lid in resources}


def _methods(synth) -> dict[tuple[str, str], dict]:
    paths = _paths(synth)
    methods = {}
    for res in synth.resources("Api", "AWS::ApiGateway::Method").values():
        props = res["Properties"]
        resource = props["ResourceId"]
        path = "/" if "Fn::GetAtt" in resource else paths[resource["Ref"]]
        methods[(props["HttpMethod"], path)] = props
    return methods


def test_route_table_matches_the_api_contract():
    assert {(r.method, r.path): r.auth.value for r in ROUTES} == API_CONTRACT


def test_every_route_is_a_method_with_the_contracts_authorization(synth):
    methods = _methods(synth)
    assert set(methods) == set(API_CONTRACT)
    (authorizer_id,) = synth.resources("Api", "AWS::ApiGateway::Authorizer")
    for key, auth in API_CONTRACT.items():
        props = methods[key]
        if auth == "public":
            assert props["AuthorizationType"] == "NONE", key
            assert "AuthorizerId" not in props, key
        else:
            assert props["AuthorizationType"] == "CUSTOM", key
            assert props["AuthorizerId"] == {"Ref": authorizer_id}, key


def test_every_method_invokes_its_routes_function(synth):
    methods = _methods(synth)
    functions = synth.lambda_functions()
    for route in ROUTES:
        integration = methods[(route.method, route.path)]["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        uri_parts = integration["Uri"]["Fn::Join"][1]
        (function_ref,) = [part for part in uri_parts if isinstance(part, dict)]
        assert function_ref == {"Fn::GetAtt": [functions[route.function.value][1], "Arn"]}, route


def test_authorizer_checks_the_authorization_header_on_every_request(synth):
    (authorizer,) = synth.resources("Api", "AWS::ApiGateway::Authorizer").values()
    props = authorizer["Properties"]
    assert props["Type"] == "REQUEST"
    assert props["IdentitySource"] == "method.request.header.Authorization"
    assert props["AuthorizerResultTtlInSeconds"] == 0
    assert synth.lambda_functions()["authorizer"][1] in str(props["AuthorizerUri"])
    env = synth.lambda_functions()["authorizer"][2]["Properties"]["Environment"]["Variables"]
    _, secret_id, _ = synth.resolve("Api", env["ADMIN_SECRET_ARN"])
    assert synth.resources("Api")[secret_id]["Properties"]["Name"] == "lablink-dev-admin-password"


def test_gateway_answers_are_our_json_errors_with_the_security_headers(synth):
    """What API Gateway answers itself (no such route, sign-in failures, its defaults) has the
    API's {"error"} shape, no-store and nosniff; an unknown route is a 404 that says what to
    check, not a 403 "Missing Authentication Token"; 401 carries the Basic challenge."""
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in synth.resources("Api", "AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(responses) >= {
        "MISSING_AUTHENTICATION_TOKEN",
        "UNAUTHORIZED",
        "ACCESS_DENIED",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    }
    for response in responses.values():
        headers = response["ResponseParameters"]
        assert headers["gatewayresponse.header.X-Content-Type-Options"] == "'nosniff'"
        assert headers["gatewayresponse.header.Cache-Control"] == "'no-store'"
        (template,) = response["ResponseTemplates"].values()
        assert list(response["ResponseTemplates"]) == ["application/json"] and template.startswith('{"error": ')

    missing = responses["MISSING_AUTHENTICATION_TOKEN"]
    assert missing["StatusCode"] == "404"
    assert json.loads(missing["ResponseTemplates"]["application/json"])["error"].startswith("There is no such route")
    unauthorized = responses["UNAUTHORIZED"]
    assert unauthorized["StatusCode"] == "401"
    assert (
        unauthorized["ResponseParameters"]["gatewayresponse.header.WWW-Authenticate"]
        == '\'Basic realm="LabLink", charset="UTF-8"\''
    )
    assert "reload" in json.loads(unauthorized["ResponseTemplates"]["application/json"])["error"]
    assert responses["ACCESS_DENIED"]["StatusCode"] == "403"
    # The defaults keep the error's own status and API Gateway's message, as a JSON string.
    for default in ("DEFAULT_4XX", "DEFAULT_5XX"):
        assert "StatusCode" not in responses[default]
        assert responses[default]["ResponseTemplates"] == {
            "application/json": '{"error": $context.error.messageString}'
        }


def test_stage_logs_traces_and_throttles(synth):
    (stage,) = synth.resources("Api", "AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "prod"
    assert props["TracingEnabled"] is True
    assert "$context.requestId" in props["AccessLogSetting"]["Format"]
    (settings,) = props["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == 50 and settings["ThrottlingBurstLimit"] == 100
    assert settings["LoggingLevel"] == "ERROR" and settings["DataTraceEnabled"] is False


def test_answers_of_a_kilobyte_or_more_are_compressed(synth):
    """The dashboard refreshes itself every few seconds: ~880 KiB of HTML at 500 VMs, ~70 KiB gzipped."""
    (api,) = synth.resources("Api", "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["MinimumCompressionSize"] == MIN_COMPRESSION_BYTES == 1024


def test_api_url_is_given_to_the_provisioning_function_without_a_cycle(synth):
    env = synth.lambda_functions()["provision"][2]["Properties"]["Environment"]["Variables"]
    joined = env["API_URL"]["Fn::Join"][1]
    (api_ref,) = [
        part for part in joined if isinstance(part, dict) and not part.get("Ref", "AWS::").startswith("AWS::")
    ]
    assert synth.resources("Api")[api_ref["Ref"]]["Type"] == "AWS::ApiGateway::RestApi"
    assert joined[-1].endswith("/prod/")
