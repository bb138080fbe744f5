"""The web UI: view logic as units, the pages through the real app on a real SQLite file, and a
person's workflow in a real headless Chromium against a real server process.

Screenshots of every page the browser tests visit go to ``test-output/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import openai
import pytest
from fastapi.testclient import TestClient

import tracejudge
import tracejudge.openai
from tracejudge.entities import Span, SpanType
from tracejudge.server.app import create_app
from tracejudge.store import SqlTraceStore, get_store
from tracejudge.testing import ChatServer, Reply
from tracejudge.testing.seed import XSS, Seeded, seed_rag_experiment
from tracejudge.testing.server_process import ServerProcess
from tracejudge.ui import views
from tracejudge.ui.pages import _safe_next

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REQUIRE_BROWSER = os.environ.get("TRACEJUDGE_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"
TIMEOUT_MS = 30_000  # a busy 2-core machine: generous, and Playwright waits for the element
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


# ------------------------------------------------------------------ view logic


def _span(span_id: str, parent: str | None, start: int, end: int | None) -> Span:
    return Span("tr-" + "0" * 32, span_id, parent, span_id, SpanType.CHAIN, start, end)


def test_span_rows_nest_children_under_parents_on_the_timeline():
    rows = views.span_rows(
        [_span("c", "a", 50, 100), _span("a", None, 0, 100), _span("b", "a", 10, 40)]
    )
    assert [(r.span.span_id, r.depth) for r in rows] == [("a", 0), ("b", 1), ("c", 1)]
    assert (rows[1].offset_pct, rows[1].width_pct) == (10.0, 30.0)
    assert rows[2].offset_pct == 50.0


def test_span_rows_survive_orphans_cycles_and_running_spans():
    rows = views.span_rows(
        [_span("a", "b", 0, 10), _span("b", "a", 0, None), _span("o", "missing", 5, 6)]
    )
    assert [r.span.span_id for r in rows] == ["o"]  # a<->b is a cycle with no root: not shown
    rows = views.span_rows([_span("r", None, 0, None), _span("k", "r", 0, 10)])
    assert rows[0].duration == "running" and rows[0].width_pct == 100.0


def test_verdict_cells_colour_pass_fail_scores_and_errors():
    from tracejudge.entities import Feedback

    assert views.verdict_cell(Feedback("g", "yes")).css == "pass"
    assert views.verdict_cell(Feedback("g", False)).css == "fail"
    score = views.verdict_cell(Feedback("t", 0.25))
    assert score.css == "score" and score.colour == "hsl(30 70% 85%)" and score.text == "0.25"
    assert views.verdict_cell(Feedback("t", 7)).css == ""
    assert views.verdict_cell(Feedback("t", None, error="Timeout")).css == "error"
    assert views.verdict_cell(None).text == ""


def test_chat_messages_are_read_from_inputs_and_choices():
    assert views.chat_messages({"messages": [{"role": "user", "content": "hi"}]}) == [
        {"role": "user", "content": "hi"}
    ]
    out = {"choices": [{"message": {"role": "assistant", "content": [{"text": "a"}]}}]}
    assert views.chat_messages(out) == [{"role": "assistant", "content": "a"}]
    assert views.chat_messages({"messages": ["not a message"]}) is None
    assert views.chat_messages("text") is None
    responses_call = {"model": "m", "instructions": "Be brief.", "input": "hi"}
    assert views.chat_messages(responses_call) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert views.chat_messages({"input": "an app function's argument", "k": 1}) is None
    response = {
        "object": "response",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "a"}]}],
    }
    assert views.chat_messages(response) == [{"role": "assistant", "content": "a"}]


def test_histogram_bins_scores_on_fixed_bins():
    bars = views.histogram([0.0, 0.05, 0.95, 1.0])
    assert [b.count for b in bars] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert max(b.height for b in bars) == 80.0
    assert views.histogram([5.0, 5.0])[0].count == 2  # one value: no zero span


@pytest.mark.parametrize(
    ("target", "safe"),
    [("/traces/x", "/traces/x"), ("https://evil.example", "/"), ("//evil", "/"), ("/\\e", "/")],
)
def test_sign_in_redirects_only_within_the_site(target, safe):
    assert _safe_next(target) == safe


# ---------------------------------------------------- pages through the real app


@pytest.fixture
def seeded_store(tmp_path) -> Iterator[tuple[SqlTraceStore, Seeded]]:
    store = SqlTraceStore(f"sqlite:///{tmp_path / 'ui.db'}")
    yield store, seed_rag_experiment(store)
    store.close()


def _csrf(client: TestClient, path: str) -> str:
    match = CSRF.search(client.get(path).text)
    assert match, "the page has no form token"
    return match.group(1)


def test_every_page_renders_and_escapes_trace_content(seeded_store):
    store, seeded = seeded_store
    client = TestClient(create_app(store))
    exp = seeded.experiment_id
    pages = [
        "/experiments",
        f"/experiments/{exp}/traces",
        f"/experiments/{exp}/traces?order=feedback.groundedness+ASC",
        f"/traces/{seeded.xss_trace_id}",
        f"/traces/{seeded.trace_ids[0]}",
        "/runs",
        f"/runs/{seeded.run_a}",
        f"/compare?a={seeded.run_a}&b={seeded.run_b}",
        f"/agreement?experiment={exp}",
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert "<script>alert" not in response.text and "<img src=x" not in response.text, path
        assert 'href="javascript:' not in response.text, path
        assert "default-src 'self'" in response.headers["content-security-policy"]
    trace_page = client.get(f"/traces/{seeded.xss_trace_id}").text
    assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in trace_page


def test_a_responses_api_call_is_shown_as_a_conversation(sqlite_tracking):
    """A call made with OpenAI's Responses API, recorded by autolog, reads on the trace page as
    its instructions, question and answer, not as JSON."""
    with ChatServer(lambda request: Reply("Paris is the answer")) as server:
        tracejudge.openai.autolog()
        try:
            client = openai.OpenAI(base_url=server.base_url, api_key="k")
            client.responses.create(model="m", instructions="Be brief.", input="Capital?")
        finally:
            tracejudge.openai.autolog(disable=True)
    tracejudge.flush()
    trace_id = tracejudge.get_last_active_trace_id()
    page = TestClient(create_app(get_store())).get(f"/traces/{trace_id}").text
    for role, text in (("system", "Be brief."), ("user", "Capital?"), ("assistant", "Paris")):
        assert re.search(rf'class="msg {role}">.*?<div class="content">{text}', page), role


def test_a_bad_filter_is_shown_inline_and_a_missing_trace_is_a_404_page(seeded_store):
    store, seeded = seeded_store
    client = TestClient(create_app(store))
    bad = client.get(f"/experiments/{seeded.experiment_id}/traces?filter=" + quote("tag.env = "))
    assert bad.status_code == 400 and 'role="alert"' in bad.text and "<form" in bad.text
    order = client.get(f"/experiments/{seeded.experiment_id}/traces?order=nonsense")
    assert order.status_code == 400 and "order" in order.text.lower()
    token = client.get(f"/experiments/{seeded.experiment_id}/traces?page=garbage")
    assert token.status_code == 400
    missing = client.get("/traces/tr-" + "0" * 32)
    assert missing.status_code == 404 and "No trace" in missing.text
    assert client.get("/experiments/999/traces").status_code == 404


def test_writes_need_the_form_token_and_are_attributed_to_the_person(seeded_store):
    store, seeded = seeded_store
    client = TestClient(create_app(store))
    tid = seeded.trace_ids[2]
    form = {"name": "user_feedback", "kind": "thumbs", "value": "down", "rationale": "wrong"}
    assert client.post(f"/traces/{tid}/feedback", data=form).status_code == 403  # no token
    client.post("/login", data={"name": "Ada Lovelace", "next": "/"})
    token = _csrf(client, f"/traces/{tid}")
    forged = client.post(
        f"/traces/{tid}/feedback",
        data={**form, "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    done = client.post(f"/traces/{tid}/feedback", data={**form, "csrf": token})
    assert done.status_code == 200  # followed the redirect back to the trace
    human = [a for a in store.get_trace(tid).info.assessments if a.name == "user_feedback"]
    assert [(a.value, a.source.source_type, a.source.source_id) for a in human] == [
        (False, "HUMAN", "Ada Lovelace")
    ]
    bad_number = client.post(
        f"/traces/{tid}/feedback",
        data={"csrf": token, "name": "n", "kind": "number", "value": "nan"},
    )
    assert bad_number.status_code == 400 and "finite" in bad_number.text


def test_selected_traces_go_into_a_dataset_shown_on_its_page(seeded_store):
    store, seeded = seeded_store
    client = TestClient(create_app(store))
    exp = seeded.experiment_id
    assert "No datasets yet." in client.get("/datasets").text
    token = _csrf(client, f"/experiments/{exp}/traces")
    chosen = seeded.trace_ids[:2]
    route = f"/experiments/{exp}/traces/to-dataset"
    unnamed = client.post(route, data={"csrf": token, "trace_id": chosen, "dataset": " "})
    assert unnamed.status_code == 400 and "Name the dataset" in unnamed.text
    done = client.post(route, data={"csrf": token, "trace_id": chosen, "dataset": "golden"})
    assert done.status_code == 200 and "<h1>golden</h1>" in done.text
    dataset = store.datasets.get(name="golden")
    assert dataset.record_count == 2 and dataset.experiment_ids == [exp]
    assert all(f'href="/traces/{tid}"' in done.text for tid in chosen)
    again = client.post(route, data={"csrf": token, "trace_id": chosen[0], "dataset": "golden"})
    assert again.status_code == 200 and store.datasets.get(name="golden").record_count == 2
    listing = client.get("/datasets").text
    assert f'href="/datasets/{dataset.dataset_id}"' in listing and ">2</td>" in listing
    assert client.get("/datasets/d-missing").status_code == 404


def test_runs_on_a_dataset_link_it_and_compare_record_by_record(sqlite_tracking):
    import tracejudge
    from tracejudge.datasets import create_dataset
    from tracejudge.scorers import scorer
    from tracejudge.store import get_store

    @scorer
    def exact(outputs, expectations) -> bool:
        return outputs == expectations["expected_response"]

    golden = create_dataset("sums")
    golden.merge_records(
        [{"inputs": {"a": a, "b": a}, "expectations": {"expected_response": 2 * a}} for a in (1, 2)]
    )
    first = tracejudge.evaluate(
        data=golden, predict_fn=lambda a, b: a + b + (a == 2), scorers=[exact]
    )
    second = tracejudge.evaluate(data=golden, predict_fn=lambda a, b: a + b, scorers=[exact])
    client = TestClient(create_app(get_store()))
    run_page = client.get(f"/runs/{second.run_id}").text
    assert f'href="/datasets/{golden.dataset_id}">sums</a>' in run_page
    compared = client.get(f"/compare?a={first.run_id}&b={second.run_id}").text
    assert "Both runs scored the same records" in compared
    assert "Verdicts that changed <small>(1)</small>" in compared


def test_read_only_tokens_see_no_write_controls_and_cannot_write(seeded_store):
    store, seeded = seeded_store
    app = create_app(store, tokens=frozenset({"w-token"}), read_only=frozenset({"r-token"}))
    tid = seeded.trace_ids[3]
    anonymous = TestClient(app)
    first = anonymous.get(f"/traces/{tid}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith("/login")
    assert anonymous.get("/api/v1/experiments").status_code == 401  # the API still needs one
    refused = anonymous.post("/login", data={"name": "eve", "token": "guess", "next": "/"})
    assert refused.status_code == 401
    unsigned = anonymous.post(f"/traces/{tid}/tags", data={"key": "k"}, follow_redirects=False)
    assert unsigned.status_code in (303, 401)  # sent to sign in, nothing written
    reader = TestClient(app)
    signed = reader.post(
        "/login", data={"name": "Rita", "token": "r-token", "next": f"/traces/{tid}"}
    )
    assert signed.status_code == 200 and "read-only" in signed.text
    cookie = signed.history[0].headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "r-token" not in cookie
    assert "Override" not in signed.text and "Add feedback" not in signed.text
    token = CSRF.search(reader.get("/experiments").text)
    assert token is None  # no forms at all
    write = reader.post(
        f"/traces/{tid}/tags", data={"csrf": reader.cookies.get("tracejudge_csrf"), "key": "k"}
    )
    assert write.status_code == 403 and store.get_trace(tid).info.tags.get("k") is None
    writer = TestClient(app)
    writer.post("/login", data={"name": "Wes", "token": "w-token", "next": "/"})
    page = writer.get(f"/traces/{tid}").text
    assert "Add feedback" in page and "Override" in page


def test_override_keeps_the_old_verdict_visible_and_needs_a_reason(seeded_store):
    store, seeded = seeded_store
    client = TestClient(create_app(store))
    tid = seeded.trace_ids[4]
    old = next(a for a in store.get_trace(tid).info.assessments if a.name == "groundedness")
    token = _csrf(client, f"/traces/{tid}")
    path = f"/traces/{tid}/assessments/{old.assessment_id}/override"
    assert client.post(path, data={"csrf": token, "value": "no"}).status_code == 400
    assert client.post(path, data={"csrf": token, "value": "no", "reason": "7:30 is invented"})
    page = client.get(f"/traces/{tid}").text
    assert "<del>groundedness</del>" in page and "7:30 is invented" in page
    after = {a.assessment_id: a for a in store.get_trace(tid).info.assessments}
    assert after[old.assessment_id].valid is False
    (new,) = [a for a in after.values() if a.overrides == old.assessment_id]
    assert (new.value, new.valid, new.source.source_type) == ("no", True, "HUMAN")


def test_experiments_page_counts_traces_and_shows_the_latest_run(seeded_store):
    store, _ = seeded_store
    page = TestClient(create_app(store)).get("/experiments").text
    assert re.search(r"rag-app</a></td>\s*<td class=\"num\">25</td>", page)
    assert "candidate-prompt" in page and "groundedness/pass_rate" in page


def test_tracejudge_ui_serves_the_pages_on_the_local_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'local.db'}"
    store = SqlTraceStore(uri)
    seeded = seed_rag_experiment(store, n=3)
    store.close()
    server = ServerProcess(uri, command="ui")
    try:
        import httpx

        home = httpx.get(f"{server.url}/", follow_redirects=True, timeout=60)
        assert home.status_code == 200 and "rag-app" in home.text
        trace = httpx.get(f"{server.url}/traces/{seeded.trace_ids[0]}", timeout=60)
        assert trace.status_code == 200 and "retrieve" in trace.text
    finally:
        server.stop()


# ------------------------------------------------------ a person in a real browser


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"No Chromium at {CHROMIUM}: scripts/setup-browser installs it.")
        pytest.skip("Chromium is not installed (scripts/setup-browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory) -> Iterator[tuple[str, Seeded]]:
    path = tmp_path_factory.mktemp("ui") / "ui.db"
    store = SqlTraceStore(f"sqlite:///{path}")
    seeded = seed_rag_experiment(store)
    store.close()
    server = ServerProcess(f"sqlite:///{path}")
    yield server.url, seeded
    server.stop()


@pytest.fixture
def page(browser, ui_server):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.dialogs = dialogs  # type: ignore[attr-defined]
    yield tab
    assert dialogs == [], f"a script ran: {dialogs}"
    context.close()


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.mark.browser
def test_find_the_worst_traces_with_a_filter_and_a_sort(page, ui_server):
    url, _ = ui_server
    page.goto(f"{url}/")
    shot(page, "01-experiments")
    page.get_by_role("link", name="rag-app").click()
    page.get_by_label("Filter").fill("feedback.groundedness = 'no' OR tag.env = 'staging'")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"filter="))
    rows = page.locator("table.traces tbody tr")
    assert rows.count() > 0
    for text in rows.all_inner_texts():
        assert "staging" in text or re.search(r"\bno\b", text), text
    page.get_by_role("link", name=re.compile("^trustworthiness")).click()
    page.wait_for_url(re.compile(r"order=feedback.trustworthiness\+ASC"))
    scores = [
        float(t)
        for t in page.locator("table.traces tbody tr td.verdict.score").all_inner_texts()
        if t
    ]
    assert scores == sorted(scores) and len(scores) == rows.count()
    shot(page, "02-traces-filtered-sorted")
    page.get_by_label("Filter").fill("tag.env = ")
    page.get_by_role("button", name="Search").click()
    assert page.get_by_role("alert").is_visible()
    shot(page, "03-traces-filter-error")


@pytest.mark.browser
def test_read_a_trace_and_add_feedback_that_shows_in_the_list(page, ui_server):
    url, seeded = ui_server
    tid = seeded.trace_ids[5]
    page.goto(f"{url}/experiments/{seeded.experiment_id}/traces")
    page.locator(f"a.trace-link[href='/traces/{tid}']").click()
    page.wait_for_url(f"**/traces/{tid}")
    retriever = page.locator("details.span", has_text="retrieve")
    retriever.locator("summary").click()
    assert retriever.locator("ol.docs").get_by_text("Tickets cost 12 EUR.").is_visible()
    chat = page.locator("details.span", has_text="chat.completions")
    chat.locator("summary").click()
    assert chat.locator(".msg.system").is_visible() and chat.locator(".msg.assistant").is_visible()
    shot(page, "04-trace-spans-open")
    form = page.locator("form", has=page.get_by_role("heading", name="Add feedback"))
    form.get_by_label("Name", exact=True).fill("user_rating")
    form.get_by_role("radio", name="number").check()
    form.get_by_label(re.compile("^Value")).fill("0.2")
    form.get_by_label("Rationale").fill("misses the closing time")
    form.get_by_role("button", name="Add feedback").click()
    page.wait_for_url(f"**/traces/{tid}#assessments")
    assert page.locator("#assessments tr", has_text="user_rating").is_visible()
    page.goto(f"{url}/experiments/{seeded.experiment_id}/traces")
    row = page.locator("table.traces tbody tr", has=page.locator(f"a[href='/traces/{tid}']"))
    header = page.locator("table.traces thead th").all_inner_texts()
    column = [h.strip() for h in header].index("user_rating")
    assert row.locator("td").nth(column).inner_text() == "0.2"


@pytest.mark.browser
def test_select_traces_and_add_them_to_a_dataset(page, ui_server):
    url, seeded = ui_server
    page.goto(f"{url}/experiments/{seeded.experiment_id}/traces")
    for tid in seeded.trace_ids[3:6]:
        page.get_by_label(f"Select trace {tid}").check()
    page.get_by_label("Dataset").fill("regressions")
    page.get_by_role("button", name="Add to dataset").click()
    page.wait_for_url(re.compile(r"/datasets/d-"))
    assert page.get_by_role("heading", name="regressions").is_visible()
    assert page.locator("table.records tbody tr").count() == 3
    shot(page, "10-dataset-records")
    page.get_by_role("link", name="Datasets").first.click()
    page.wait_for_url("**/datasets")
    row = page.locator("table.list tbody tr", has_text="regressions")
    assert row.locator("td.num").inner_text() == "3"
    shot(page, "11-datasets")


@pytest.mark.browser
def test_override_a_verdict_and_compare_two_runs(page, ui_server):
    url, seeded = ui_server
    tid = seeded.trace_ids[6]
    page.goto(f"{url}/traces/{tid}")
    verdict = page.locator("#assessments tbody tr", has_text="groundedness").first
    verdict.locator("details.override summary").click()
    verdict.get_by_label("Correct value").fill("no")
    verdict.get_by_label("Reason").fill("the hours are not in the context")
    verdict.get_by_role("button", name="Save override").click()
    page.wait_for_url(f"**/traces/{tid}#assessments")
    assert page.locator("#assessments tr.struck del", has_text="groundedness").count() == 1
    assert page.get_by_text("the hours are not in the context").is_visible()
    shot(page, "05-trace-overridden")
    page.goto(f"{url}/runs")
    shot(page, "06-runs")
    page.get_by_role("button", name="Compare A → B").click()
    page.wait_for_url(re.compile(r"/compare\?"))
    links = page.locator("table.changed tbody a").all_inner_texts()
    assert sorted(set(links)) == sorted(seeded.changed)  # each changed on both scorers
    assert len(links) == 2 * len(seeded.changed)
    shot(page, "07-compare")
    page.goto(f"{url}/runs/{seeded.run_a}")
    assert (
        page.locator(".passbar").first.is_visible() and page.locator("figure.hist svg").is_visible()
    )
    shot(page, "08-run")


@pytest.mark.browser
def test_injected_markup_renders_as_text_and_agreement_page_reads(page, ui_server):
    url, seeded = ui_server
    page.goto(f"{url}/traces/{seeded.xss_trace_id}")
    assert page.locator("script", has_text="xss").count() == 0
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("a[href^='javascript:']").count() == 0
    assert page.get_by_text(XSS).first.is_visible()
    page.locator("details.span", has_text="retrieve").locator("summary").click()
    shot(page, "09-trace-xss-as-text")
    page.goto(f"{url}/agreement?experiment={seeded.experiment_id}")
    assert page.get_by_role("heading", name="Judge agreement").is_visible()
    shot(page, "10-agreement")
    page.set_viewport_size({"width": 420, "height": 800})
    page.goto(f"{url}/experiments/{seeded.experiment_id}/traces")
    shot(page, "11-traces-narrow")


def test_pass_rate_bars_put_each_hour_in_its_slot_and_leave_gaps():
    now = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000 + 600_000  # 10 min into an hour
    hours = [(now - 600_000 - 3 * 3_600_000, 0.5, 4), (now - 600_000, 1.0, 2)]
    old = (now - 600_000 - 30 * 3_600_000, 0.0, 1)  # older than the chart: left out
    bars = views.pass_rate_bars([old, *hours], now)
    slot = views.CHART_WIDTH / views.CHART_HOURS
    assert [b.x for b in bars] == [20 * slot, 23 * slot]
    assert [b.height for b in bars] == [views.CHART_HEIGHT / 2, views.CHART_HEIGHT]
    assert bars[0].label.endswith("50% of 4 passed")


@pytest.fixture(scope="module")
def monitored_server(tmp_path_factory) -> Iterator[str]:
    """A server on a store where two scorers have been monitoring for ten hours."""
    import time as clock

    from factories import make_trace
    from tracejudge import set_tracking_uri
    from tracejudge.monitoring import Monitor, MonitorOptions
    from tracejudge.scorers import ScorerSamplingConfig
    from tracejudge.testing.monitor_scorers import answered, says_yes

    uri = f"sqlite:///{tmp_path_factory.mktemp('monitor') / 'monitor.db'}"
    store = SqlTraceStore(uri)
    experiment = store.get_or_create_experiment("support-bot").experiment_id
    if clock.time() % 3600 < 20:  # every trace of "this hour" must already be in it
        clock.sleep(20 - clock.time() % 3600)
    this_hour = int(clock.time() // 3600) * 3_600_000
    traces = [  # the app got worse lately: fewer answers say "yes"
        make_trace(
            experiment,
            timestamp_ms=this_hour - hour * 3_600_000 + i * 1000,
            outputs="yes" if i < 10 - (10 - hour) // 2 else "no",
        )
        for hour in range(10)
        for i in range(10)
    ]
    store.log_traces(traces)
    set_tracking_uri(uri)
    try:
        says_yes.register(experiment="support-bot", alert_below=0.8).start()
        answered.register(experiment="support-bot").start(ScorerSamplingConfig(sample_rate=0.5))
        Monitor(store, options=MonitorOptions(settle_s=0)).run_once()
    finally:
        set_tracking_uri(None)
    store.close()
    server = ServerProcess(uri)
    yield server.url
    server.stop()


@pytest.mark.browser
def test_the_monitoring_page_charts_pass_rate_per_hour(browser, monitored_server):
    context = browser.new_context(viewport={"width": 1366, "height": 700})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{monitored_server}/")
        page.get_by_role("link", name="Monitoring").click()
        page.wait_for_url(re.compile(r"/monitoring"))
        row = page.locator("tr[data-scorer='says_yes']")
        assert "STARTED" in row.inner_text()
        bars = row.locator("svg.passchart rect.pass, svg.passchart rect.fail")
        assert bars.count() == 10  # one bar per hour with verdicts
        assert row.locator("svg.passchart rect.fail").count() > 0  # below its alert threshold
        assert page.locator("tr[data-scorer='answered'] svg.passchart rect.pass").count() == 10
        shot(page, "09-monitoring")
    finally:
        context.close()
