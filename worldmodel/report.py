"""Regenerate the README's tables from the committed reports: `python -m worldmodel.report`.

Each table sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` markers in README.md
and is rendered from `reports/NAME.json`; nothing in those blocks is typed by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REPORTS = ROOT / "reports"


def probe_table(report: dict) -> str:
    card = report["encoder_card"]
    lines = ["| features, probe | end-effector R² | end-effector error (cm) | object R² | "
             "object error (cm) | task accuracy |", "|---|---|---|---|---|---|"]
    for name, r in report["results"].items():
        lines.append(f"| {name} | {r['ee_r2']:.3f} | {r['ee_cm']:.2f} | {r['object_r2']:.3f} | "
                     f"{r['object_cm']:.2f} | {100 * r['task_acc']:.1f} % |")
    lines += ["", f"Encoder: `{card['command']}` ({card['steps']} steps, "
              f"{card['wall_time_s'] / 60:.0f} min on a 2-core CPU, final loss "
              f"{card['final_metrics']['loss']:.4f}). Probes fitted on "
              f"{report['config']['train_episodes']} training episodes and measured on the "
              f"held-out episodes; from `reports/probe.json`."]
    return "\n".join(lines)


def attention_table(report: dict) -> str:
    lines = ["| shape | attention | batch | tokens | it/s | clips/s | peak memory (MB) | "
             "training memory (MB) |", "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {r['shape']} | {r['attention']} | {r['batch']} | {r['tokens']} | "
                     f"{r['it_per_s']:.3f} | {r['clips_per_s']:.2f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['training_mb']:.0f} |")
    device = report["results"][0]["device"] if report["results"] else "?"
    lines.append("")
    lines.append(f"Measured by `python -m worldmodel.benchmark` on {device} "
                 f"({report['results'][0]['precision'] if report['results'] else '?'}); "
                 "from `reports/attention.json`.")
    return "\n".join(lines)


TABLES = {"probe": probe_table, "attention": attention_table}


def render(readme: str) -> str:
    """README text with every table block regenerated from its report."""
    for name, make in TABLES.items():
        path = REPORTS / f"{name}.json"
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        if not path.exists() or not pattern.search(readme):
            continue
        block = f"{start}\n{make(json.loads(path.read_text()))}\n{end}"
        readme = pattern.sub(lambda m, b=block: b, readme)
    return readme


def main() -> None:
    text = README.read_text()
    new = render(text)
    README.write_text(new)
    print("README tables " + ("updated" if new != text else "already up to date"))


if __name__ == "__main__":
    main()
