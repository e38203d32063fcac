"""Every route in the URL map, every method, anonymous and in each role, plain and htmx, with hostile values
(RELIABILITY row 34): no 5xx, no trace, a request id on every answer, and the portal's branded error page.

One test per route walks it in every role (one world for all: building it is the slow part) and reports
every failure at once, by role. probes.py says what is sent, checks.py what each answer must be.
"""

from __future__ import annotations

from tests.fuzz.fuzzing import walk
from tests.fuzz.routes import Route, routes
from tests.fuzz.visitors import ROLES, Visitor


def test_route(app, world, errors, route: Route):
    failing = []
    for role in ROLES:
        findings = walk(route, Visitor(app, app.test_client(), world, role, errors=errors))
        if findings:
            failing.append(findings.report())
    assert not failing, f"{route.id}\n" + "\n".join(failing)


def test_the_suite_walks_the_whole_url_map(app):
    from tests.fuzz.conftest import collected_routes

    assert routes(app) == list(collected_routes())


def test_every_id_in_a_url_has_real_objects(app, world):
    """Each `<int:...>` parameter gets a real id of the role's tenant and of another tenant (world.py)."""
    missing = {name for route in routes(app) for name in route.int_params} - set(world.ids)
    assert not missing, f"add these URL parameters to World.ids in tests/fuzz/world.py: {sorted(missing)}"
