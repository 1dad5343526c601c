"""Fixed overlap 3 against adaptive overlap 2..5, with simulated annotators of known accuracy.

Runs the real assignment and judgment services on a throw-away SQLite database:
annotators take turns asking for work and answer an item's hidden truth with
their accuracy (otherwise the other response). Reports judgments spent and the
accuracy of the majority label against the truth, and saves the figures to
bench/results/simulate_overlap.json and .md.

    .venv/bin/python bench/simulate_overlap.py [--items 1000] [--seed 7]
"""

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import common
from common import ROOT

ACCURACIES = [0.95, 0.9, 0.85, 0.8, 0.8, 0.75, 0.75, 0.7, 0.7, 0.65, 0.6, 0.6]


def setup_django(database: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.pop("DATABASE_URL", None)  # this throw-away SQLite file only
    os.environ.update(
        common.django_env(
            {"SQLITE_PATH": str(database)}, DJANGO_SETTINGS_MODULE="feedback.settings", ALLOWED_HOSTS="localhost"
        )
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def run(policy: str, items: int, seed: int) -> dict:
    from django.contrib.auth import get_user_model

    from labeling.models import Item, Judgment, Response
    from labeling.services.assignment import assignment_next
    from labeling.services.judgments import judgment_submit
    from labeling.services.members import membership_add
    from labeling.services.projects import project_create

    rng = random.Random(seed)
    adaptive = policy == "adaptive"
    project = project_create(
        slug=f"sim-{policy}", overlap=3, min_votes=2 if adaptive else None, max_votes=5 if adaptive else None
    )
    created = Item.objects.bulk_create(
        Item(
            project=project,
            external_id=f"i{n}",
            prompt=[{"role": "user", "content": f"q{n}"}],
            target=project.initial_target,
        )
        for n in range(items)
    )
    Response.objects.bulk_create(
        Response(item=item, position=position, content=f"answer {position}")
        for item in created
        for position in range(2)
    )
    truth = {item.pk: rng.randrange(2) for item in created}  # the better response's position
    annotators = []
    for index, accuracy in enumerate(ACCURACIES):
        membership_add(project=project, username=f"{policy}-{index}", create=True)
        annotators.append((get_user_model().objects.get(username=f"{policy}-{index}"), accuracy))
    positions = dict(Response.objects.filter(item__project=project).values_list("id", "position"))
    active = list(annotators)
    started = time.perf_counter()
    while active:
        for entry in list(active):
            user, accuracy = entry
            assignment = assignment_next(project=project, annotator=user)
            if assignment is None:
                active.remove(entry)
                continue
            better = truth[assignment.item_id] if rng.random() < accuracy else 1 - truth[assignment.item_id]
            ranked = sorted(assignment.shown_order, key=lambda pk: positions[pk] != better)
            judgment_submit(assignment_id=assignment.pk, annotator=user, ranking=[[ranked[0]], [ranked[1]]])
    seconds = time.perf_counter() - started
    votes: dict[int, Counter] = {}
    for item_id, ranking in Judgment.objects.filter(project=project).values_list("item_id", "ranking"):
        votes.setdefault(item_id, Counter())[positions[ranking[0][0]]] += 1
    correct = undecided = 0
    for item_id, tally in votes.items():
        (top, top_votes), *rest = [*tally.most_common(), (None, 0)]
        if rest and rest[0][1] == top_votes:
            undecided += 1
        elif top == truth[item_id]:
            correct += 1
    judgments = Judgment.objects.filter(project=project).count()
    return {
        "policy": "adaptive 2..5" if adaptive else "fixed overlap 3",
        "items": items,
        "judgments": judgments,
        "judgments_per_item": round(judgments / items, 3),
        "majority_accuracy": round(correct / items, 4),
        "undecided_items": undecided,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        setup_django(Path(folder) / "simulation.sqlite3")
        results = [run("fixed", args.items, args.seed), run("adaptive", args.items, args.seed)]
    fixed, adaptive = results
    saving = 1 - adaptive["judgments"] / fixed["judgments"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, SQLite"
    report = {
        "machine": machine,
        "annotator_accuracies": ACCURACIES,
        "seed": args.seed,
        "results": results,
        "judgments_saved": round(saving, 4),
    }
    lines = [
        f"# Fixed against adaptive overlap ({args.items} items, {len(ACCURACIES)} simulated annotators)",
        "",
        f"Machine: {machine}. Annotator accuracies: {', '.join(map(str, ACCURACIES))}; seed {args.seed}.",
        "",
        "| policy | judgments | per item | majority accuracy | undecided items |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['policy']} | {r['judgments']} | {r['judgments_per_item']} | {r['majority_accuracy']:.1%} | "
        f"{r['undecided_items']} |"
        for r in results
    ]
    lines += ["", f"Adaptive overlap spent {saving:.1%} fewer judgments."]
    common.results_write("simulate_overlap", report, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
