"""The dashboard in a real browser (Debian's Chromium, headless) against a live hub with
real agents: sign in, live output, cancel, fan-out groups, API keys, a Slack
integration tested against a local stub, schedules, sign out, tenant isolation.

Every page is checked for JavaScript console errors; the main pages are saved as
screenshots into ``docs/screenshots`` (the README shows them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.browser import PHONE, BrowserPage, browser, open_page  # noqa: F401
from tests.e2e.conftest import AgentProc, LiveHub
from tests.e2e.proc_helpers import wait_for
from tests.orchestrator.receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.timeout(300)]

FAILING_DEPLOY = "#!/usr/bin/env bash\necho \"deploy of ${version} failed\"\nexit 4\n"


def sign_in(ui: BrowserPage, email: str, password: str) -> None:
    ui.go("/ui/agents")
    assert "/ui/sign-in" in ui.page.url  # no session yet: sent to sign in
    ui.page.fill("input[name=email]", email)
    ui.page.fill("input[name=password]", password)
    ui.page.click("button[type=submit]")
    ui.page.wait_for_url("**/ui/agents")


def run_script(ui: BrowserPage, agent: str, script: str, params: str) -> str:
    """Fill the Run form as a user does; return the job id of the page it lands on."""
    ui.go(f"/ui/run?target=agent&value={agent}")
    ui.page.select_option("#run-pick select[name=name]", script)  # submits the pick form
    ui.page.wait_for_selector("#run-form")
    fill_params(ui, params)
    ui.page.click("#run-button")
    ui.page.wait_for_url(re.compile(r".*/ui/jobs/job_[0-9a-f]+$"))
    return ui.page.url.rsplit("/", 1)[1]


def fill_params(ui: BrowserPage, params: str) -> None:
    """Type ``KEY=value`` lines into the form: a declared param's own field, else the
    free-form box (shown only for scripts and flows that declare none)."""
    extra = []
    for line in filter(None, params.splitlines()):
        name, _, value = line.partition("=")
        field = ui.page.locator(f'#run-form [name="param.{name}"]')
        if field.count():
            field.fill(value)
        else:
            extra.append(line)
    if extra:
        ui.page.fill("#run-form textarea[name=extra]", "\n".join(extra))


def wait_text(ui: BrowserPage, selector: str, text: str, timeout: float = 15_000) -> None:
    """Wait until ``selector`` contains ``text`` (no eval: the page's CSP forbids it)."""
    ui.page.locator(selector, has_text=text).wait_for(timeout=timeout)


def status_of(ui: BrowserPage) -> str:
    return ui.page.get_attribute("#job-status .badge", "data-status") or ""


def check_live_output(ui: BrowserPage, agent: str) -> str:
    """sleep.sh prints, sleeps, prints: the first line shows while the job still runs."""
    job_id = run_script(ui, agent, "sleep.sh", "seconds=4")
    wait_text(ui, "#stdout", "sleeping 4s")
    assert status_of(ui) in ("pending", "running")
    assert ui.page.text_content("#live-state") == "live"  # the event stream, not polling
    assert "done sleeping" not in ui.page.text_content("#stdout")
    wait_text(ui, "#stdout", "done sleeping", timeout=30_000)
    ui.page.wait_for_selector("#job-status .badge[data-status=success]")
    assert ui.page.text_content("#job-exit").strip() == "0"
    assert ui.page.is_hidden("#cancel-box")
    ui.screenshot("job")
    return job_id


def check_cancel(ui: BrowserPage, agent: str) -> None:
    run_script(ui, agent, "sleep.sh", "seconds=60")
    wait_text(ui, "#stdout", "sleeping 60s")
    ui.page.click("#cancel-box button")
    ui.page.wait_for_selector("#job-status .badge[data-status=cancelled]", timeout=30_000)


def check_flow_steps(ui: BrowserPage, agent: str, hub_url: str) -> None:
    """A flow's steps appear on the job page as they complete (step events)."""
    ui.go(f"/ui/run?target=agent&value={agent}")
    ui.page.select_option("#run-pick select[name=kind]", "flow")
    ui.page.wait_for_selector("#run-pick select[name=name] option[value=health]",
                              state="attached")
    ui.page.select_option("#run-pick select[name=name]", "health")
    ui.page.wait_for_selector("#run-form")
    fill_params(ui, f"hub_url={hub_url}")
    ui.page.click("#run-button")
    ui.page.wait_for_url(re.compile(r".*/ui/jobs/job_[0-9a-f]+$"))
    ui.page.wait_for_selector("#job-status .badge[data-status=success]", timeout=30_000)
    for step in ("hub_health", "report"):
        ui.page.wait_for_selector(f"#steps tr[data-step={step}] .badge[data-status=passed]")
    assert "hub_version=" in ui.page.text_content("#steps tr[data-step=hub_health]")
    wait_text(ui, "#stdout", "healthy")
    ui.screenshot("flow-job")


def check_fanout(ui: BrowserPage) -> str:
    ui.go("/ui/run?target=tags&value=e2e")
    ui.page.select_option("#run-pick select[name=name]", "deploy.sh")
    ui.page.wait_for_selector("#run-form")
    fill_params(ui, "version=v2.4.1")
    ui.page.click("#run-button")
    ui.page.wait_for_url(re.compile(r".*/ui/fanouts/fan_[0-9a-f]+$"))
    ui.page.wait_for_selector("#fanout-status .badge[data-status=failed]", timeout=60_000)
    groups = ui.page.locator("#groups article")
    assert groups.count() == 2
    first, second = groups.nth(0).text_content(), groups.nth(1).text_content()
    assert "failed" in first and "exit 4" in first and "1 agent" in first
    assert "deploy of v2.4.1 failed" in first and "agent-c" in first
    assert "success" in second and "2 agents" in second
    ui.screenshot("fanout")
    return ui.page.url.rsplit("/", 1)[1]


def check_api_key(ui: BrowserPage, hub: LiveHub) -> str:
    ui.go("/ui/settings/api-keys")
    ui.page.fill("#key-form input[name=name]", "CI Pipeline")
    ui.page.click("#key-form button[type=submit]")
    raw = ui.page.input_value("#raw-key")
    assert raw.startswith("sm_live_")
    assert "Store this key securely. It will not be shown again." in ui.page.content()
    ui.screenshot("api-keys")
    assert hub.call("GET", "/auth/me", raw)[0] == 200
    ui.go("/ui/settings/api-keys")
    assert raw not in ui.page.content()  # shown once
    row = ui.page.locator("#keys-table tr", has_text="CI Pipeline")
    row.locator("button", has_text="Revoke").click()
    ui.page.wait_for_selector("#keys-table tr:has-text('CI Pipeline') .badge[data-status=revoked]")
    assert hub.call("GET", "/auth/me", raw)[0] == 401
    return raw


def check_slack(ui: BrowserPage, stub: Receiver) -> None:
    ui.go("/ui/settings/integrations")
    ui.page.select_option("#integration-form select[name=type]", "slack")
    ui.page.fill("#integration-form input[name=name]", "ops-slack")
    ui.page.fill("#integration-form input[name=url]", stub.url + "/services/T0/B0/slack-secret")
    ui.page.click("#integration-form button[type=submit]")
    row = ui.page.locator("#integrations-table tr", has_text="ops-slack")
    assert "webhook_url configured" in row.text_content()
    assert "slack-secret" not in ui.page.content()  # the secret is never shown again
    row.locator("button", has_text="Test Connection").click()
    ui.page.wait_for_selector(".flash-ok:has-text('Test passed')")
    assert stub.paths() == ["/services/T0/B0/slack-secret"]
    assert "ScriptMesh" in stub.requests[0].body.decode()
    ui.page.wait_for_selector("#integrations-table tr:has-text('ops-slack') "
                              ".last-test .badge[data-status=ok]")
    ui.screenshot("integrations")


def check_schedule(ui: BrowserPage, agent: str) -> None:
    ui.go("/ui/schedules")
    form = "#schedule-form "
    ui.page.fill(form + "input[name=name]", "nightly hello")
    ui.page.fill(form + "input[name=value]", agent)
    ui.page.fill(form + "input[name=name_run]", "hello.sh")
    ui.page.fill("#cron", "30 2 * * 1-5")
    ui.page.wait_for_selector("#preview-fires li >> nth=4")
    assert "02:30" in ui.page.text_content("#cron-words")
    assert ui.page.locator("#preview-fires li").count() == 5
    ui.page.click(form + "button[type=submit]")
    ui.page.wait_for_url(re.compile(r".*/ui/schedules/sched_[0-9a-f]+$"))
    fires = ui.page.locator("#next-fires li")
    assert fires.count() == 5
    assert all("02:30:00" in fires.nth(i).text_content() for i in range(5))
    ui.screenshot("schedule")
    ui.go("/ui/schedules")
    assert "nightly hello" in ui.page.text_content("#schedules-table")
    ui.screenshot("schedules")


def test_dashboard_end_to_end(live_hub: LiveHub, operator: dict[str, Any],
                              start_agent: Callable[..., AgentProc],
                              open_page: Callable[..., BrowserPage],  # noqa: F811
                              make_user: Callable[..., dict[str, Any]]) -> None:
    agents = {name: start_agent(name, operator["agent_key"](), live_hub, wait=False)
              for name in ("agent-a", "agent-b", "agent-c")}
    for agent in agents.values():
        wait_for(agent.registered, 30, what=f"agent {agent.name} registered")
    (agents["agent-c"].scripts_dir / "deploy.sh").write_text(FAILING_DEPLOY)

    ui = open_page(live_hub.url)
    sign_in(ui, operator["email"], operator["password"])
    row = ui.page.locator("tr[data-agent=agent-a]")
    assert row.locator("td.status .badge").get_attribute("data-status") == "online"
    assert "e2e" in row.text_content()
    ui.screenshot("agents")

    job_id = check_live_output(ui, "agent-a")
    check_cancel(ui, "agent-b")
    check_flow_steps(ui, "agent-c", live_hub.url)
    fanout_id = check_fanout(ui)
    raw_key = check_api_key(ui, live_hub)
    with Receiver() as stub:
        check_slack(ui, stub)
    check_schedule(ui, "agent-a")

    ui.go("/ui/run?target=agent&value=agent-a&kind=script&name=hello.sh")
    ui.screenshot("run")
    ui.go("/ui/metrics")
    assert "3" in ui.page.text_content(".tile .big")
    ui.screenshot("metrics")
    ui.go("/ui/jobs")
    assert job_id in ui.page.text_content("table")
    ui.screenshot("jobs")

    phone = open_page(live_hub.url, viewport=PHONE, color_scheme="dark")
    sign_in(phone, operator["email"], operator["password"])
    phone.screenshot("agents-phone-dark", full_page=False)
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways at 375 px ({width} px)"
    phone.assert_no_errors()

    check_other_tenant(open_page(live_hub.url), make_user(), job_id, fanout_id, raw_key)

    ui.page.click("header .signout button")
    ui.page.wait_for_url("**/ui/sign-in")
    ui.go("/ui/agents")
    assert "/ui/sign-in" in ui.page.url
    ui.assert_no_errors()


def check_other_tenant(ui: BrowserPage, other: dict[str, Any], job_id: str, fanout_id: str,
                       raw_key: str) -> None:
    """A second tenant's browser sees none of the first tenant's agents, jobs, keys or
    integrations, and their pages answer 404."""
    sign_in(ui, other["email"], other["password"])
    assert "agent-a" not in ui.page.content()
    assert ui.page.locator("tr[data-agent]").count() == 0
    assert ui.page.text_content("h1").split() == ["Agents", "0"]
    ui.go("/ui/jobs")
    assert job_id not in ui.page.content()
    ui.go("/ui/fanouts")
    assert fanout_id not in ui.page.content()
    ui.go("/ui/settings/api-keys")
    keys = ui.page.text_content("#keys-table")
    assert "CI Pipeline" not in keys and raw_key[:12] not in ui.page.content()
    ui.go("/ui/settings/integrations")
    assert "ops-slack" not in ui.page.text_content("#integrations-table")
    ui.go("/ui/schedules")
    assert "nightly hello" not in ui.page.text_content("#schedules-table")
    assert ui.go(f"/ui/jobs/{job_id}").status == 404
    assert ui.go(f"/ui/fanouts/{fanout_id}").status == 404
    ui.errors.clear()  # the two 404s above are expected "failed to load" console lines
