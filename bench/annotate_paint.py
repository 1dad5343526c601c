"""The annotator's wait in Chromium: Enter pressed to the next item painted, and the annotate page's bytes.

Serves a checkout (`--app-dir`, default this one) with `manage.py runserver --noreload` on a
fresh SQLite database in a temporary folder: the demo, plus a project of long multi-turn
conversations (nine turns, two long answers, as in HH-RLHF). Logs in as the demo's annotator
in headless Chromium (the Debian package, through Playwright) at 1366x768 and, for each of
`--items` items, presses `1` then Enter and times, inside the page, from the Enter keydown to
the first animation frame after the item on screen changed (a MutationObserver on `#item`,
then requestAnimationFrame: the frame that shows the next item). Also sums the annotate
page's bytes by resource type as the browser received them (document, script, stylesheet).

Prints the figures with a description of the machine and writes bench/results/annotate_paint.{json,md}
(`--out` for another name). Run it on the checkout before a change and after, in the same hour.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common
from common import HOST, ROOT
from playwright.sync_api import sync_playwright

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SEED = """
import json, random, sys, django
django.setup()
from labeling.models import Item, Project, Response
from labeling.services.projects import project_create
try:
    from labeling.services.members import membership_add
except ImportError:  # a checkout (--app-dir) from before the members module
    from labeling.services.projects import membership_add
rng = random.Random(7)
words = "the model should answer the question directly and say when it does not know while staying polite".split()
text = lambda n: " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."
project = project_create(slug="hh", title="HH-RLHF harmless", overlap=1)
membership_add(project=project, username="alice", role="annotator")
for n in range(int(sys.argv[1])):
    turns = []
    for _ in range(4):
        turns += [{"role": "user", "content": text(30)}, {"role": "assistant", "content": text(150)}]
    turns.append({"role": "user", "content": text(20)})
    item = Item.objects.create(project=project, external_id=f"hh-{n}", prompt=turns, target=1)
    for position in range(2):
        Response.objects.create(item=item, position=position, model=f"m{position}", content=text(400))
"""
# Installed in the page: the time from Enter to the first frame after #item changed.
PROBE = """() => {
  window.__paints = [];
  let pressed = null;
  document.addEventListener("keydown", (event) => { if (event.key === "Enter") pressed = performance.now(); }, true);
  new MutationObserver(() => {
    if (pressed === null) return;
    const start = pressed; pressed = null;
    requestAnimationFrame(() => window.__paints.push(performance.now() - start));
  }).observe(document.getElementById("item"), {childList: true, subtree: true, attributes: true,
                                              attributeFilter: ["data-assignment"]});
}"""


def serve(app_dir: Path, folder: Path, items: int) -> tuple[subprocess.Popen, str]:
    env = common.django_env(
        {"SQLITE_PATH": str(folder / "db.sqlite3")},
        DEBUG="1",  # runserver serves the static files, as on a developer's machine
        ALLOWED_HOSTS=HOST,
        PYTHONPATH=str(app_dir),
        DJANGO_SETTINGS_MODULE="feedback.settings",
    )
    python = sys.executable
    for args in (["manage.py", "migrate", "--noinput", "-v0"], ["manage.py", "demo"], ["-c", SEED, str(items)]):
        done = subprocess.run([python, *args], cwd=app_dir, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(args[:2])} failed:\n{done.stderr[-2000:]}")
    port = common.free_port()
    server = subprocess.Popen(
        [python, "manage.py", "runserver", "--noreload", f"{HOST}:{port}"],
        cwd=app_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    common.wait_for_port(port)
    return server, f"http://{HOST}:{port}"


def measure(base: str, items: int) -> dict:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
        page.goto(base + "/login/")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("demo-alice-pass")
        page.get_by_label("Password").press("Enter")
        page.wait_for_load_state("networkidle")
        received: dict[str, int] = {}
        page.on(
            "response", lambda response: received.__setitem__(response.url, (response.request.resource_type, response))
        )
        page.goto(base + "/p/hh/annotate/")
        page.wait_for_load_state("networkidle")
        by_type: dict[str, int] = {}
        for kind, response in received.values():
            by_type[kind] = by_type.get(kind, 0) + len(response.body())
        page.evaluate(PROBE)
        for _ in range(items):
            page.keyboard.press("1")
            with page.expect_response(lambda response: response.url.endswith("/judge/")):
                page.keyboard.press("Enter")
            page.wait_for_timeout(150)  # the annotator reads a little; the answer settles
        paints = page.evaluate("window.__paints")
        browser.close()
    return {"paints_ms": paints, "bytes_by_type": by_type}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", default=str(ROOT), help="the checkout to serve (default: this one)")
    parser.add_argument("--items", type=int, default=40, help="items judged and timed (default 40)")
    parser.add_argument("--out", default="annotate_paint", help="results file name, without .json/.md")
    args = parser.parse_args()
    app_dir = Path(args.app_dir).resolve()
    code = common.code_state(app_dir)
    machine = {
        "cpu": common.cpu_model() or platform.processor(),
        "cores": os.cpu_count(),
        "load": os.getloadavg(),
        "python": platform.python_version(),
        "chromium": subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout.strip(),
        "app": str(app_dir),
        "commit": " ".join(filter(None, (code.get("commit"), code.get("subject")))),
    }
    with tempfile.TemporaryDirectory() as folder:
        server, base = serve(app_dir, Path(folder), args.items + 2)
        try:
            result = measure(base, args.items)
        finally:
            server.terminate()
            server.wait()
    paints = sorted(result["paints_ms"])
    figures = {
        "n": len(paints),
        "p50_ms": round(statistics.median(paints), 1) if paints else None,
        "p90_ms": round(paints[int(0.9 * (len(paints) - 1))], 1) if paints else None,
        "max_ms": round(paints[-1], 1) if paints else None,
        "bytes_by_type": result["bytes_by_type"],
    }
    report = {"machine": machine, "figures": figures, "paints_ms": [round(value, 2) for value in paints]}
    print(json.dumps(report["machine"], indent=2))
    print(json.dumps(figures, indent=2))
    lines = [
        f"# Enter to the next item painted ({machine['commit']})",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, load {machine['load'][0]:.2f}; {machine['chromium']}; "
        f"Python {machine['python']}. Served by runserver on SQLite, 1366x768, long conversations.",
        "",
        "| n | p50 ms | p90 ms | max ms | document B | script B | stylesheet B |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {figures['n']} | {figures['p50_ms']} | {figures['p90_ms']} | {figures['max_ms']} | "
        f"{figures['bytes_by_type'].get('document', 0):,} | {figures['bytes_by_type'].get('script', 0):,} | "
        f"{figures['bytes_by_type'].get('stylesheet', 0):,} |",
        "",
    ]
    out = common.results_write(args.out, report, "\n".join(lines))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
