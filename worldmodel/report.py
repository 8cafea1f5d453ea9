"""Regenerate the README's tables from the committed reports: `python -m worldmodel.report`.

Each table sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` markers in README.md
and is rendered from `reports/NAME.json`; nothing in those blocks is typed by hand.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REPORTS = ROOT / "reports"


def save_json(path: str | Path, data: dict) -> Path:
    """Write a report (JSON, indented, trailing newline), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score 95 % interval of a success rate."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # p inside


def probe_table(report: dict, source: str = "reports/probe.json") -> str:
    card = report["encoder_card"]
    lines = ["| features, probe | end-effector R² | end-effector error (cm) | object R² | "
             "object error (cm) | task accuracy | content rank |", "|---|---|---|---|---|---|---|"]
    for name, r in report["results"].items():
        rank = f"{r['content_rank']:.1f}" if "content_rank" in r else "–"  # older reports
        object_cm = f"{r['object_cm']:.2f}"
        if "runs" in r:  # a mean over seeds: give the runs' range
            each = [run["object_cm"] for run in r["runs"]]
            object_cm += f" ({min(each):.2f}–{max(each):.2f}, {len(each)} runs)"
        lines.append(f"| {name} | {r['ee_r2']:.3f} | {r['ee_cm']:.2f} | {r['object_r2']:.3f} | "
                     f"{object_cm} | {100 * r['task_acc']:.1f} % | {rank} |")
    lines += ["", f"Encoder: `{card['command']}` ({card['steps']} steps, "
              f"{card['wall_time_s'] / 60:.0f} min on a 2-core CPU, final loss "
              f"{card['final_metrics']['loss']:.4f})."]
    for path, other in zip(report["config"].get("also", []), report.get("also_cards", [])):
        lines[-1] += f" `{path}`: `{other['command']}`."
    config = report["config"]
    lines[-1] += (f" Probes fitted on {config['train_episodes']} training episodes of "
                  f"`{config['data_dir']}` and measured on its held-out episodes")
    inits, seeds = config.get("random_init_seeds", [0]), config.get("attentive_seeds", [0])
    if len(inits) > 1 or len(seeds) > 1:
        lines[-1] += (f"; each row is the mean over random-init seeds {inits} (random init "
                      f"only) and attentive-probe seeds {seeds} (attentive rows)")
    lines[-1] += f"; from `{source}`."
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


def prediction_table(report: dict, source: str = "reports/ac_prediction.json") -> str:
    lines = ["| horizon (model steps) | control steps | predictor L1 | copy-last L1 | "
             "predictor L2 | copy-last L2 |", "|---|---|---|---|---|---|"]
    for i, h in enumerate(report["horizon"]):
        lines.append(f"| {h} | {h * report['frameskip']} | {report['predictor_l1'][i]:.4f} | "
                     f"{report['copy_last_l1'][i]:.4f} | {report['predictor_l2'][i]:.4f} | "
                     f"{report['copy_last_l2'][i]:.4f} |")
    lines += ["", f"Open-loop rollouts from one observed frame with the true actions, "
              f"{report['windows']} windows of {report['val_episodes']} held-out episodes; "
              f"errors per token channel (features are layer-normalised). Predictor: "
              f"{report['conditioning']}, {report['steps']} steps "
              f"({report['wall_time_s'] / 60:.0f} min); from `{source}`."]
    if "gripper_one_step" in report:
        lines += ["", gripper_summary(report["gripper_one_step"])]
    if "object_state" in report:
        lines += ["", object_state_summary(report["object_state"])]
    return "\n".join(lines)


def gripper_summary(g: dict) -> str:
    """One sentence on `train_ac.gripper_error`: the imagined gripper, free vs blocked."""
    def part(name):
        r = g[name]
        if not r["windows"]:
            return f"{name}: no windows"
        return (f"{name} {r['median_cm']:.2f} / {r['mean_cm']:.2f} cm ({r['windows']} windows; "
                f"imagined {r['imagined_move_cm']:.1f} cm of motion where "
                f"{r['true_move_cm']:.1f} cm happened)")
    return (f"Imagined gripper one model step ahead, error median / mean, of {g['windows']} "
            f"held-out windows: {part('free')}; {part('blocked')}. Blocked: moved less than "
            f"{100 * g['blocked_below']:.0f} % of the free motion its actions command.")


def object_state_summary(o: dict) -> str:
    """One sentence on `train_ac.object_summary`: the imagined contact point vs copy-last."""
    def part(name):
        r = o[name]
        return ", ".join(f"h{h + 1} {p:.2f} vs {c:.2f} cm ({n})" if n else f"h{h + 1} -"
                         for h, (p, c, n) in enumerate(zip(
                             r["predictor_median_cm"], r["copy_last_median_cm"], r["windows"])))
    return (f"Imagined contact point, median error, predictor vs copy-last (windows): all "
            f"{part('all')}; where the object moved more than {o['moved_above_cm']:g} cm: "
            f"{part('moved')}.")


def conditioning_table(reports: dict) -> str:
    lines = ["| conditioning | steps | L1 at h=1 | L2 at h=1 | L2 at h=4 | copy-last L2 at h=4 |",
             "|---|---|---|---|---|---|"]
    for name, r in reports.items():
        lines.append(f"| {name} | {r['steps']} | {r['predictor_l1'][0]:.4f} | "
                     f"{r['predictor_l2'][0]:.4f} | {r['predictor_l2'][-1]:.4f} | "
                     f"{r['copy_last_l2'][-1]:.4f} |")
    lines += ["", "Same data, schedule and seed; held-out episodes; from "
              "`reports/ac_conditioning_*.json`."]
    return "\n".join(lines)


def mpc_table(report: dict) -> str:
    lines = ["| task | success | any-step success | final task distance (cm) | "
             "median planning time (ms/step) | episodes |", "|---|---|---|---|---|---|"]
    for name, r in report["tasks"].items():
        lines.append(f"| {name} | {100 * r['success_rate']:.0f} % | "
                     f"{100 * r['any_success_rate']:.0f} % | "
                     f"{100 * r['mean_final_distance']:.1f} | {r['median_plan_ms']:.0f} | "
                     f"{r['episodes']} (seeds {min(r['seeds'])}–{max(r['seeds'])}) |")
    first = next(iter(report["tasks"].values()), None)
    if first:
        p = first["config"]["planner"]
        lines += ["", f"`python -m planners.mpc env=<task> episodes={first['episodes']}` "
                  f"({p['name']}, {p['num_samples']} samples x {p['iterations']} iterations, "
                  f"horizon {p['horizon']}, {describe_energy(first['config'])}, "
                  f"{_camera(first['config'])} camera), {first['threads']} CPU threads; from "
                  "`reports/mpc.json`."]
    return "\n".join(lines)


def describe_energy(cfg: dict) -> str:
    """The planning energy and context of a run's config (planners.mpc's fields), in words."""
    objective = cfg["objective"]
    scales = list(objective.get("scales", [1]))
    energy = f"{objective['distance']} energy" + (
        f" pooled at scales {', '.join(map(str, scales))}" if scales != [1] else "")
    proprio_weight = objective.get("proprio_weight", 0)
    if proprio_weight > 0 or objective.get("latent_weight", 1) != 1:
        energy = f"{objective['latent_weight']:g} x {energy}"
    if proprio_weight > 0:
        energy += (f" + {proprio_weight:g} x |imagined gripper - goal gripper read by the "
                   "proprio reader| (m)")
    # an object term needs a predictor that imagines the contact point (the object state),
    # and the contact term then uses the imagined point too
    imagined = objective.get("object_weight", 0) > 0
    if objective.get("contact_weight", 0) > 0:
        energy += (f" + {objective['contact_weight']:g} x |imagined gripper - " + (
            "imagined contact point| (m)" if imagined else
            "contact point read from the current image by the contact reader| (m)"))
        if objective.get("approach_slope", 0) > 0:
            energy += (f" approached from above (target lifted min({objective['approach_slope']:g}"
                       f" x horizontal distance, {objective['approach_height']:g} m))")
        if objective.get("contact_every_step") and objective.get("weighting") == "last":
            energy += " at every imagined step"
    if imagined:
        energy += (f" + {objective['object_weight']:g} x |imagined contact point - goal "
                   "contact point read by the contact reader| (m)")
    if objective.get("weighting", "last") == "uniform":
        energy += ", averaged over the imagined steps"
    elif objective.get("hold_radius", 0) > 0:
        energy += (f", averaged over the imagined steps once the read contact point is within "
                   f"{objective['hold_radius']:g} m of the goal's")
        if objective.get("hold_release", 0) > 0:
            energy += f" (and while within {objective['hold_release']:g} m after that)"
        if objective.get("hold_scale", 1) < 1:
            energy += f", the planned moves scaled by {objective['hold_scale']:g} there"
        if objective.get("hold_proprio_weight", 0) > 0:
            energy += (f", then with {objective['hold_proprio_weight']:g} x |imagined gripper - "
                       "goal gripper read by the proprio reader| (m)")
    if objective.get("unstick_lift", 0) > 0:
        motion = "horizontal motion" if objective.get("unstick_horizontal") else "motion"
        energy += (f"; after a step in which the gripper moved less than 40 % of its imagined "
                   f"{motion}, a first model step lifting it (dz {objective['unstick_lift']:g})"
                   " unless holding")
    if objective.get("open_radius", 0) > 0:
        energy += (f"; where the goal image shows the fingers apart, the grip held open while "
                   f"the gripper is farther than "
                   f"{objective['open_radius']:g} m from the read contact point")
        if objective.get("keep_held"):
            energy += ", and closed while the fingers hold something"
        if objective.get("carry"):
            energy += (", the held object taken at the imagined gripper + its held offset and "
                       "averaged over the imagined steps")
    if objective.get("push_offset", 0) > 0:
        clear = objective.get("push_clear", 0)
        near = f"{clear:g} m from it" if clear > 0 else "that far"
        energy += ("; where the goal image shows the fingers closed and a low object elsewhere, "
                   f"the contact target {objective['push_offset']:g} m behind it on the line "
                   f"from its goal (near the goal, {near} on the gripper's side, held)")
        if objective.get("clear_weight", 0) > 0:
            energy += (f" + {objective['clear_weight']:g} x how far (m) the imagined gripper's "
                       "path runs too low near it there")
        if objective.get("push_scale", 1) < 1:
            energy += (f", the planned moves scaled by {objective['push_scale']:g} while it is "
                       f"within {objective.get('push_near', 0.06):g} m of its goal")
        if objective.get("home_lift", 0) > 0:
            energy += (f", a first model step lifting the gripper (dz {objective['home_lift']:g},"
                       " the fingers kept) while it is low over the object there")
    if objective.get("touch_radius", 0) > 0:
        path = "'s path between steps, no farther than the gripper moved"
        energy += (f"; the imagined object moved only within {objective['touch_radius']:g} m "
                   f"of the imagined gripper{path if objective.get('touch_path') else ''}")
    if cfg.get("history", 1) > 1:
        energy += f", {cfg['history']} frames of context"
    if cfg.get("prior"):
        energy += "; each plan's sampling started from the policy prior's proposal"
        if cfg.get("prior_weight", 0) > 0:
            energy += (f", + {cfg['prior_weight']:g} x the mean |action - the proposal's| in "
                       "the energy")
        if cfg.get("prior_margin") is not None:
            energy += (f"; the prior acting (one control action per image) unless the best plan "
                       f"imagines an energy below its proposal's x {1 - cfg['prior_margin']:g}")
        if cfg.get("prior_stall") is not None:
            energy += (f", planned only after a model step in which the gripper moved less "
                       f"than {cfg['prior_stall']:g} m while the read object was farther than "
                       f"{cfg['stall_distance']:g} m from the goal's")
            if cfg.get("stall_plans", 1) > 1:
                energy += f" (and for the {cfg['stall_plans'] - 1} model steps after it)"
    return energy


def _camera(cfg: dict) -> str:
    return cfg.get("env", {}).get("cameras", ["front"])[0]


def planner_speed_table(report: dict) -> str:
    lines = ["| planner | samples x iterations x horizon | ms per planning step | "
             "samples x steps / s | GFLOP per plan | % of matmul peak |",
             "|---|---|---|---|---|---|"]
    for r in report["results"]:
        lines.append(f"| {r['planner']} | {r['num_samples']} x {r['iterations']} x "
                     f"{r['horizon']} | {r['median_ms_per_plan']:.0f} | "
                     f"{r['samples_x_steps_per_s']:,.0f} | {r['gflop_per_plan']:.1f} | "
                     f"{100 * r['peak_fraction']:.0f} % |")
    first = report["results"][0]
    setup = (f"; {describe_energy(first['config'])}, {_camera(first['config'])} camera"
             if "config" in first else "")
    lines += ["", f"`python -m planners.benchmark`, {first['threads']} CPU threads, peak "
              f"measured in the same run{setup}; from `reports/planner_speed.json`."]
    return "\n".join(lines)


SEED_TARGETS = {"push": 87, "pick_place": 73, "drawer": 81, "button": 79}  # the seed's table, %
SEED_SCRATCH = {"push": 34, "pick_place": 19, "drawer": 28, "button": 41}  # its scratch row, %
# the README's summary table: (row, report, method), each report's seed ranges in turn
HEADLINE = (("world model planning where the policy prior stalls, object variant "
             "(`planning=object_prior_stall`)", "object_prior_stall", "world_model"),
            ("scratch: random-init encoder, the same prior and readers "
             "(`planning=object_prior_stall`)", "object_prior_stall", "scratch"),
            ("world model + policy prior, object variant (`planning=object_prior`)",
             "object_prior", "world_model"),
            ("policy prior alone, no world model (`methods=[prior]`)", "object_prior", "prior"),
            ("world model, object variant (`planning=object_home_lift`)", "object_home_lift",
             "world_model"),
            ("scratch: random-init encoder, object-variant recipe (`planning=object_home_lift`)",
             "object_home_lift_scratch", "scratch"),
            ("world model, label-free default (`planning=shipped`)", "label_free", "world_model"),
            ("scratch: random-init encoder, label-free recipe", "label_free", "scratch"),
            ("oracle: the true simulator, same planner", "zero_shot", "oracle"),
            ("random actions", "zero_shot", "random"))
# the object variant's planning configs in the order they were added: (report, what it adds)
PROGRESSION = (
    ("object_wm_2", "`object`: the predictor imagines the task's contact point; the energy "
                    "adds the imagined gripper's distance to it and the imagined contact "
                    "point's to the goal's, read from the goal image"),
    ("object_reach_hold", "`object_hold`: the contact point reached from above; a reached goal "
                          "held"),
    ("object_path", "`object_path`: the contact term at every imagined step"),
    ("object_grasp", "`object_grasp`: the fingers kept open on the way to a cube"),
    ("object_grasp_held", "`object_grasp_held`: a held cube's grip kept closed"),
    ("object_carry", "`object_carry`: a held cube carried with the gripper"),
    ("object_push", "`object_push`: a low object pushed from behind; the imagined object moved "
                    "only near the imagined gripper"),
    ("object_touch", "`object_touch`: moved only along the gripper's path; a pushed object "
                     "left clear at its goal"),
    ("object_clear", "`object_clear`: the gripper kept above a pushed object at its goal; a "
                     "reached goal held until 3 cm off"),
    ("object_steady", "`object_steady`: the planned moves scaled by 0.3 while a reached goal "
                      "is held"),
    ("object_unstick", "`object_unstick`: a lift after a step the gripper was blocked in"),
    ("object_unstick_xy", "`object_unstick_xy`: blocked judged from horizontal motion only"),
    ("object_push_slow", "`object_push_slow`: the planned moves x 0.5 while a pushed object is "
                         "within 6 cm of its goal"),
    ("object_home_lift", "`object_home_lift`: `object_unstick_xy` (not `object_push_slow`) + a "
                         "lift off a pushed object read at its goal, the fingers kept"))


def _weights_name(path: str) -> str | None:
    """How a report names a run's weights folder: None for the shipped default, from
    `worldmodel/pretrained` on for the other shipped ones (the same on every machine), else
    as given."""
    parts = Path(path).parts
    for i in range(len(parts) - 1):
        if parts[i:i + 2] == ("worldmodel", "pretrained"):
            return "/".join(parts[i:]) if len(parts) > i + 2 else None
    return path


def _weights_names(cfg: dict) -> list[tuple[str, str]]:
    """The weights a run's caption names: the world model's (also sim_latent's encoder),
    unless it is the shipped default or no method of the run used it, and the scratch
    baseline's where it is not the default one."""
    methods = cfg.get("methods", ["world_model"])
    names = []
    weights = _weights_name(cfg["weights_dir"])
    if weights and {"world_model", "sim_latent"} & set(methods):
        names.append(("weights", weights))
    scratch = _weights_name(cfg.get("scratch_dir", ""))
    if "scratch" in methods and scratch not in (None, "worldmodel/pretrained/scratch"):
        names.append(("scratch weights", scratch))
    return names


def _rate(r: dict | None) -> str:
    if r is None:
        return "–"
    low, high = r["wilson_95"]
    return f"{100 * r['success_rate']:.0f} % [{100 * low:.0f}–{100 * high:.0f}]"


def zero_shot_table(report: dict, detail: bool = False,
                    source: str = "reports/zero_shot.json") -> str:
    """Success per task and method for each seed range of `python -m planners.evaluate`;
    with `detail`, every figure per task and method as well."""
    lines = []
    for name, run in report["ranges"].items():
        results = run["results"]
        methods = list(dict.fromkeys(m for t in results.values() for m in t))
        lines += [f"Seeds {name}: success at the final step [Wilson 95 % interval]", "",
                  "| task | " + " | ".join(methods) + " | world model − oracle | "
                  "seed target |", "|---" * (len(methods) + 3) + "|"]
        for task, row in results.items():
            gap = "–"
            if "world_model" in row and "oracle" in row:
                points = 100 * (row["world_model"]["success_rate"] - row["oracle"]["success_rate"])
                gap = f"{points:+.0f} pts"
            lines.append(f"| {task} | " + " | ".join(_rate(row.get(m)) for m in methods)
                         + f" | {gap} | {SEED_TARGETS.get(task, '–')} % |")
        cfg, p = run["config"], run["config"]["planner"]
        wanted = run["seeds"][1] - run["seeds"][0] + 1
        short = sorted({f"{m} {r['episodes']}" for row in results.values()
                        for m, r in row.items() if r["episodes"] < wanted})
        counts = f"{wanted} seeded episodes per task and method" + (
            f" (still running, episodes so far: {', '.join(short)})" if short else "") + (
            f"; planner generator seeded with the env seed + {cfg['planner_seed']}"
            if cfg.get("planner_seed", 0) else "")
        energy = describe_energy(cfg)
        if cfg.get("subgoals", 0):
            energy += (f"; {cfg['subgoals']} sub-goal images of the scripted expert's way to "
                       f"the goal first (next after their share of the budget or within "
                       f"{100 * cfg['subgoal_reach']:g} cm of the read sub-goal gripper)")
        setup = (f"; {_camera(cfg)} camera" if _camera(cfg) != "front" else "") + "".join(
            f"; {what} `{name}`" for what, name in _weights_names(cfg))
        lines += ["", f"{counts}; {p['name']} {p['num_samples']} samples x "
                  f"{p['iterations']} iterations, horizon {p['horizon']}, "
                  f"{energy}{setup}; {run['workers']} workers x "
                  f"{run['threads_per_worker']} thread(s); suite wall time "
                  f"{run['wall_time_s'] / 60:.0f} min; git {run['git_revision']}; from "
                  f"`{source}`.", ""]
        if detail:
            lines += ["| task | method | success [95 % CI] | any-step success | mean final "
                      "distance (cm) | planning ms/step, median / p90 | episodes |",
                      "|---|---|---|---|---|---|---|"]
            for task, row in results.items():
                for method, r in row.items():
                    acted = (f" (the prior acted on {100 * r['prior_acts_fraction']:.0f} % of "
                             "plans)" if r.get("prior_acts_fraction") is not None else "")
                    lines.append(f"| {task} | {method}{acted} | {_rate(r)} | "
                                 f"{100 * r['any_success_rate']:.0f} % | "
                                 f"{100 * r['mean_final_distance']:.1f} | "
                                 f"{r['median_plan_ms']:.0f} / {r['p90_plan_ms']:.0f} | "
                                 f"{r['episodes']} |")
            lines.append("")
    return "\n".join(lines).rstrip()


def headline_table(reports: dict) -> str:
    """Success of each HEADLINE row per task and seed range, beside the seed's table."""
    tasks = list(SEED_TARGETS)
    lines = ["| | seeds | " + " | ".join(tasks) + " |", "|---|---|" + "---|" * len(tasks)]
    for label, name, method in HEADLINE:
        for seeds, run in reports[name]["ranges"].items():
            lines.append(f"| {label} | {seeds} | " + " | ".join(
                _rate(run["results"].get(task, {}).get(method)) for task in tasks) + " |")
    lines.append("| the seed's table: V-JEPA 2 / scratch | – | " + " | ".join(
        f"{SEED_TARGETS[t]} / {SEED_SCRATCH[t]} %" for t in tasks) + " |")
    sources = ", ".join(f"`reports/{name}.json`" for name in dict.fromkeys(r[1] for r in HEADLINE))
    return "\n".join([*lines, "", f"Success at the final step [Wilson 95 % interval], 50 seeded "
                       f"episodes per task and row; from {sources}."])


def progression_table(reports: dict) -> str:
    """The object variant's world-model success per task, config after config (PROGRESSION),
    both seed ranges in each cell."""
    tasks = list(SEED_TARGETS)
    lines = ["| `planning=` and what it adds | " + " | ".join(tasks) + " |",
             "|---|" + "---|" * len(tasks)]
    for name, adds in PROGRESSION:
        ranges = reports[name]["ranges"]
        if list(ranges) != ["0-49", "1000-1049"]:
            adds += f" (seeds {' / '.join(ranges)})"
        cells = [" / ".join(f"{100 * r['success_rate']:.0f}" if r else "–" for r in (
            run["results"].get(task, {}).get("world_model") for run in ranges.values()))
            for task in tasks]
        lines.append(f"| {adds} | " + " | ".join(cells) + " |")
    lines.append("| the seed's table | " + " | ".join(f"{SEED_TARGETS[t]}" for t in tasks) + " |")
    return "\n".join([*lines, "", "Success (%) at the final step on seeds 0-49 / 1000-1049, 50 "
                       "seeded episodes per task and range unless marked; each config is the "
                       "one above it plus what its row says; from `reports/NAME.json`, NAME "
                       "the row's report (`object_wm_2` for `object`, `object_reach_hold` for "
                       "`object_hold`)."])


def rl_wrappers_table(report: dict) -> str:
    rows = {r["env"]: r["steps_per_s"] for r in report["results"]}
    raw = rows.get("raw env")
    lines = ["| env | steps/s | vs raw env |", "|---|---|---|"]
    for name, rate in rows.items():
        lines.append(f"| {name} | {rate:,.0f} | {rate / raw:.2f}x |" if raw else
                     f"| {name} | {rate:,.0f} | – |")
    cfg = report["config"]
    lines += ["", f"`python -m worldmodel.rl_benchmark` on {cfg['task']}: random actions, "
              f"resets included, {report['threads']} CPU threads; a vector step counts "
              f"{cfg['num_envs']} env steps; from `reports/rl_wrappers.json`."]
    return "\n".join(lines)


def rl_example_table(report: dict) -> str:
    cfg, curves = report["config"], report["curves"]
    lines = ["| env steps | goal-image reward | true success reward |", "|---|---|---|"]
    for a, b in zip(curves["goal image"], curves["success"]):
        lines.append(f"| {a['steps']:,} | {100 * a['success']:.0f} % | "
                     f"{100 * b['success']:.0f} % |")
    lines += ["", f"`python -m worldmodel.rl_example task={cfg['task']} steps={cfg['steps']}`: "
              f"{cfg['algo'].upper()}, final-step success of the deterministic policy on "
              f"{cfg['eval_episodes']} held-out episodes; from `reports/rl_example.json`."]
    return "\n".join(lines)


def runs_table(reports: dict, key, label, header: str, name: str,
               method: str = "oracle", cell=_rate, note: str = "") -> str:
    """One method (by default the oracle: true simulator, state energy) in several runs of
    `python -m planners.evaluate methods=[method]`, one row each, sorted by `key(config)`
    and named by `label(config)` in the column `header`; `name`: the reports' file prefix;
    `cell(result)`: a task's entry; `note`: appended to the caption's description of it."""
    runs = sorted((r for report in reports.values() for r in report["ranges"].values()),
                  key=lambda r: (r["seeds"][0], key(r["config"])))
    tasks = list(dict.fromkeys(t for r in runs for t in r["results"]))
    ranges = list(dict.fromkeys(r["range"] for r in runs))
    lines = [f"| {header} | " + ("seeds | " if len(ranges) > 1 else "") + " | ".join(tasks)
             + " | median planning ms/step |",
             "|---" * (len(tasks) + 2 + (len(ranges) > 1)) + "|"]
    for run in runs:
        results = [run["results"].get(t, {}).get(method) for t in tasks]  # None: not run
        ms = sorted(r["median_plan_ms"] for r in results if r)
        lines.append(f"| {label(run['config'])} | "
                     + (f"{run['range']} | " if len(ranges) > 1 else "")
                     + " | ".join(cell(r) if r else "–" for r in results)
                     + f" | {ms[len(ms) // 2]:.0f} |")
    machines = [f"{r['workers']} workers x {r['threads_per_worker']} thread(s)" for r in runs]
    where = machines[0] if len(set(machines)) == 1 else "rows run on " + ", ".join(machines)
    seeds = f"seeds {ranges[0]}, " if len(ranges) == 1 else ""
    lines += ["", f"`python -m planners.evaluate methods=[{method}]`, {seeds}success at the "
              f"final step [Wilson 95 % interval]{note}; {where}; from `reports/{name}_*.json`."]
    return "\n".join(lines)


def planner_budget_table(reports: dict) -> str:
    """The oracle at several planner budgets."""
    def key(cfg):
        return cfg["planner"]["num_samples"] * cfg["planner"]["iterations"], cfg["planner"][
            "horizon"]
    return runs_table(
        reports, key, lambda c: (f"{c['planner']['num_samples']} x "
                                 f"{c['planner']['iterations']}, {c['planner']['horizon']}"),
        "samples x iterations, horizon", "oracle_budget")


def oracle_contact_table(reports: dict) -> str:
    """The oracle with its state energy alone and with a contact-first term."""
    def weight(cfg):
        return cfg.get("oracle_contact_weight", 0.0)
    return runs_table(
        reports, weight, lambda c: (f"+ {weight(c):g} x &#124;gripper − contact point&#124;"
                                    if weight(c) else "goal state distance"),
        "oracle energy", "oracle_contact")


def object_wm_table(reports: dict) -> str:
    """The world model with an object-state predictor, per object term weight."""
    def weight(cfg):
        return cfg["objective"].get("object_weight", 0.0)
    return runs_table(
        reports, weight, lambda c: (f"{weight(c):g} x object + "
                                    f"{c['objective'].get('contact_weight', 0.0):g} x contact"),
        "energy: shipped +", "object_wm", method="world_model")


def object_hold_table(reports: dict) -> str:
    """The object-state variant with the energy's terms that pull the gripper on after the
    object arrived changed: success at the final step and at any step."""
    def label(cfg):
        o = cfg["objective"]
        approach, hold = o.get("approach_slope", 0.0), o.get("hold_radius", 0.0)
        return (f"{o.get('latent_weight', 1.0):g} x tokens, {o.get('proprio_weight', 0.0):g} x "
                f"goal gripper, '{o['weighting']}'"
                + (f", from above (slope {approach:g})" if approach else "")
                + (", contact term at every step" if o.get("contact_every_step") else "")
                + (f", hold within {100 * hold:g} cm with "
                   f"{o.get('hold_proprio_weight', 0.0):g} x goal gripper" if hold else ""))

    def key(cfg):
        o = cfg["objective"]
        return (-o.get("proprio_weight", 0.0), o["weighting"], o.get("approach_slope", 0.0),
                o.get("hold_radius", 0.0), o.get("hold_proprio_weight", 0.0),
                o.get("contact_every_step", False))
    return runs_table(reports, key, label, "energy", "object_hold", method="world_model",
                      cell=lambda r: f"{_rate(r)} ({100 * r['any_success_rate']:.0f} %)",
                      note=" (at any step)")


def planner_luck_table(reports: dict) -> str:
    """The object variant at its headline config (`reports/object_home_lift.json`) and again
    with other planner seeds (`planner_seed`) or budgets, the env seeds the same: how much of
    one run's success rate is the planner's sampling."""
    reports = {"": load_report("object_home_lift"), **reports}
    ranges = ["0-49", "1000-1049"]
    rows: dict[tuple, dict] = {}  # (samples, iterations, planner seed) -> (task, range) -> eps
    ms: dict[tuple, list] = {}  # the same -> median planning ms per task and range
    for report in reports.values():
        for seeds, run in report["ranges"].items():
            p, cfg = run["config"]["planner"], run["config"]
            key = (p["num_samples"], p["iterations"], cfg.get("planner_seed", 0))
            for task, result in run["results"].items():
                rows.setdefault(key, {})[task, seeds] = [e for e in run["episodes"] if (
                    e["task"], e["method"]) == (task, "world_model")]
                ms.setdefault(key, []).append(result["world_model"]["median_plan_ms"])
    tasks = [t for t in SEED_TARGETS if any((t, r) in row for row in rows.values() for r in ranges)]

    def cell(parts: list[list]) -> str:  # episodes per range -> counts per range, pooled rate
        if not any(parts):
            return "–"
        wins = [sum(e["success"] for e in part) for part in parts]
        low, high = wilson_interval(sum(wins), sum(map(len, parts)))
        return (", ".join(f"{w}/{len(part)}" if part else "–" for w, part in zip(wins, parts))
                + f": {100 * sum(wins) / sum(map(len, parts)):.0f} % [{100 * low:.0f}–"
                f"{100 * high:.0f}]")

    lines = ["| planner budget | planner seed | " + " | ".join(tasks)
             + " | median planning ms/step |", "|---|---|" + "---|" * (len(tasks) + 1)]
    for key, row in sorted(rows.items()):
        lines.append(f"| {key[0]} x {key[1]} | + {key[2]} | " + " | ".join(
            cell([row.get((t, r), []) for r in ranges]) for t in tasks)
            + f" | {median(ms[key]):.0f} |")
    default = [row for (samples, iterations, _), row in sorted(rows.items())
               if (samples, iterations) == (64, 3)]
    pooled, always = [], []
    for t in tasks:  # the default budget's runs that hold this task on both ranges
        runs = [row for row in default if all((t, r) in row for r in ranges)]
        pooled.append(cell([sum((row[t, r] for row in runs), []) for r in ranges])
                      if len(runs) > 1 else "–")
        wins: dict[int, int] = {}
        for row in runs:
            for e in sum((row[t, r] for r in ranges), []):
                wins[e["seed"]] = wins.get(e["seed"], 0) + e["success"]
        if len(runs) > 1:
            always.append(f"{t} {sum(w == len(runs) for w in wins.values())} always and "
                          f"{sum(w == 0 for w in wins.values())} never ({len(runs)} runs)")
    lines.append("| 64 x 3 | all pooled | " + " | ".join(pooled) + " | – |")
    lines += ["", "`python -m planners.evaluate planning=object_home_lift`, successes on seeds "
              "0-49, 1000-1049 and the rate over both [Wilson 95 % interval]; planner seed: "
              "added to the env seed to seed the planner's generator (+ 0: the headline's run); "
              "planning time per step on one of 2 single-threaded workers. Env seeds (of 100) "
              "that succeeded in every run at 64 x 3 and in none: " + "; ".join(always)
              + "; from `reports/object_home_lift.json` and `reports/planner_luck_*.json`."]
    return "\n".join(lines)


def contact_approach_table(reports: dict) -> str:
    """How close the world model's gripper came to the task's contact point, per energy:
    the median over episodes of each episode's closest approach."""
    tasks = list(dict.fromkeys(t for r in reports.values() for run in r["ranges"].values()
                               for t in run["results"]))
    lines = ["| energy | seeds | " + " | ".join(f"{t}: closest approach (cm), median"
                                                for t in tasks) + " |",
             "|---" * (len(tasks) + 2) + "|"]
    for report in reports.values():
        for name, run in report["ranges"].items():
            weight = run["config"]["objective"].get("contact_weight", 0.0)
            label = (f"+ {weight:g} x &#124;gripper − read contact point&#124;" if weight
                     else "shipped energy")
            cells = [median([e["closest_contact"] for e in run["episodes"]
                                if e["task"] == t]) for t in tasks]
            lines.append(f"| {label} | {name} | " + " | ".join(f"{100 * c:.1f}" for c in cells)
                         + " |")
    lines += ["", "The world model (shipped weights) on `python -m planners.evaluate`, the "
              "closest each episode's gripper came to the task's contact point (from the "
              "simulator, for evaluation only); from `reports/contact_approach_*.json`."]
    return "\n".join(lines)


def energy_check_table(reports: dict) -> str:
    """`planners.energy_check`: how each world model's energy orders action sequences, one
    row per report and task."""
    lines = ["| world model, camera, energy (distance, scales, steps) | task | "
             "ρ(world model, sim_latent) | ρ(sim_latent, true) | ρ(world model, true) | "
             "elite true rank: sim_latent | elite true rank: world model | "
             "elite true rank: stay still | imagined gripper R² | goal gripper read error |",
             "|---" * 10 + "|"]
    for report in reports.values():
        cfg = report["config"]
        energy = cfg["objective"]
        weights = Path(cfg["weights_dir"])  # pretrained/... for the shipped ones, else its name
        name = "/".join(weights.parts[weights.parts.index("pretrained"):]
                        if "pretrained" in weights.parts else weights.parts[-1:])
        label = (f"`{name}`, {cfg['env']['cameras'][0]}, "
                 f"{energy['distance']} {list(energy['scales'])} {energy['weighting']}")
        terms = [(energy.get(key, 0), term) for key, term in (
            ("proprio_weight", "gripper"), ("contact_weight", "contact"),
            ("object_weight", "object"))]
        if any(weight > 0 for weight, _ in terms):
            label += f", {energy['latent_weight']:g} × latent" + "".join(
                f" + {weight:g} × {term}" for weight, term in terms if weight > 0)
        for task, result in report["tasks"].items():
            m = result["mean"]
            read = f"{m['goal_read_cm']:.1f} cm" if "goal_read_cm" in m else "—"
            lines.append(f"| {label} | {task} | {m['rho_world_model_sim_latent']:+.2f} | "
                         f"{m['rho_sim_latent_true']:+.2f} | {m['rho_world_model_true']:+.2f} | "
                         f"{m['elite_rank_sim_latent']:.2f} | {m['elite_rank_world_model']:.2f} "
                         f"| {m['elite_rank_stay_still']:.2f} | {m['gripper_r2']:+.2f} | {read} |")
    cfg = next(iter(reports.values()))["config"]
    lines += ["", f"`python -m planners.energy_check`: {cfg['states']} states per task (seeds "
              f"{cfg['seed']}-{cfg['seed'] + cfg['states'] - 1}), {cfg['samples']} action "
              f"sequences each ({cfg['expert_fraction']:.0%} around the expert's), horizon "
              f"{cfg['planner']['horizon']}; means over states. Energy steps: `last` scores "
              "the final model step, `uniform` the mean over the horizon. Elite true rank: "
              f"where the {cfg['planner']['num_elites']} sequences an energy ranks best stand "
              "in the true order (0 = the truly best, 0.5 = chance); stay still: a control "
              "that ranks them by how little they move the gripper; imagined gripper R²: the "
              "predictor's final proprio against the simulated one, across the sequences; "
              "`gripper`: the term |imagined gripper − goal gripper read from the goal image "
              "by the proprio reader| (metres), whose mean reading error the last column "
              "gives; from `reports/energy_check_*.json`."]
    return "\n".join(lines)


def reader_table(report: dict, what: str = "Gripper position error of the proprio reader",
                 source: str = "reports/reader_wide.json") -> str:
    """`worldmodel.train_reader`: a reader's held-out position error."""
    lines = ["| held-out images | images | median (cm) | mean (cm) | 90th percentile (cm) |",
             "|---|---|---|---|---|"]
    rows = [("every frame", report["frames"]),
            *((f"frames, {task}", e) for task, e in report.get("frames_per_task", {}).items()),
            *([("goal images", report["goal_images"])] if "goal_images" in report else []),
            *((f"goal images, {task}", e)
              for task, e in report.get("goal_images_per_task", {}).items())]
    for name, e in rows:
        lines.append(f"| {name} | {e['images']} | {e['position_cm_median']:.2f} | "
                     f"{e['position_cm_mean']:.2f} | {e['position_cm_p90']:.2f} |")
    lines += ["", f"{what} on {report['val_episodes']} held-out play episodes "
              f"({report['steps']} steps on {report['train_frames']} training frames, "
              f"{report['wall_time_s'] / 60:.0f} min on 2 CPU cores); from `{source}`."]
    return "\n".join(lines)


def prior_table(report: dict) -> str:
    """`worldmodel.train_prior`: the policy prior's held-out action error."""
    lines = ["| held-out frames | frames | prior | no motion |", "|---|---|---|---|"]
    for name, e in [("every frame", report["all"]), *report["per_task"].items()]:
        lines.append(f"| {name} | {e['examples']} | {e['prior_mse']:.3f} | "
                     f"{e['no_motion_mse']:.3f} |")
    lines += ["", f"Mean squared error per action dimension (actions in [-1, 1]) of the next "
              f"control actions on {report['val_episodes']} held-out play episodes, against "
              f"proposing no motion ({report['steps']} steps on {report['train_frames']:,} "
              f"training frames, {report['wall_time_s'] / 60:.0f} min on 2 CPU cores); from "
              "`reports/prior.json`."]
    return "\n".join(lines)


TABLES = {"probe": probe_table, "attention": attention_table,
          **{name: (lambda r, n=name: probe_table(r, source=f"reports/{n}.json"))
             for name in ("probe_wide", "probe_spread", "probe_multiblock", "probe_seeds")},
          "ac_prediction": prediction_table, "ac_conditioning": conditioning_table,
          "mpc": mpc_table, "planner_speed": planner_speed_table,
          "zero_shot": zero_shot_table, "headline": headline_table,
          "progression": progression_table,
          "rl_wrappers": rl_wrappers_table,
          **{name: (lambda r, n=name: zero_shot_table(r, source=f"reports/{n}.json"))
             for name in ("zero_shot_front", "sim_latent", "sim_latent_pyramid", "wide_pyramid",
                          "wide_pretrained",
                          "wide_reader", "wide_reader_h2", "wide_reader_finetuned",
                          "wide_reader_button", "wide_reader_button_1000",
                          "wide_scratch_reader_button", "wide_scratch_reader_button_1000",
                          "wide_blocked_button", "wide_blocked_button_1000",
                          "wide_reach_button", "button_128x3", "button_32x6", "button_mppi",
                          "contact_wm",
                          "wide_reader_subgoals", "zero_shot_l1", "zero_shot_l1_energy",
                          "zero_shot_shipped_l1_energy", "label_free",
                          "label_free_subgoals", "label_free_subgoals_drawer",
                          "label_free_subgoals6", "label_free_subgoals6_scratch",
                          "label_free_subgoals10")},
          **{name: (lambda r, n=name: prediction_table(r, source=f"reports/{n}.json"))
             for name in ("ac_prediction_scratch", "ac_prediction_gpu_wide",
                          "ac_prediction_gpu_wide_scratch", "ac_prediction_wide_pretrained",
                          "ac_prediction_wide_finetuned", "ac_prediction_wide_scratch_finetuned",
                          "ac_prediction_wide_blocked", "ac_prediction_wide_scratch_blocked",
                          "ac_prediction_wide_reach", "ac_prediction_wide_object",
                          "ac_prediction_wide_l1", "ac_prediction_wide_scratch_l1",
                          "ac_prediction_wide_object_scratch",
                          "ac_prediction_wide_object_spread")},
          "oracle_budget": planner_budget_table, "oracle_contact": oracle_contact_table,
          "contact_approach": contact_approach_table, "object_wm": object_wm_table,
          "object_hold": object_hold_table, "planner_luck": planner_luck_table,
          **{name: (lambda r, n=name: zero_shot_table(r, detail=True,
                                                      source=f"reports/{n}.json"))
             for name in ("object_reach_hold", "object_path", "object_path_free",
                          "object_grasp", "object_grasp_held", "object_carry",
                          "object_push", "object_touch", "object_clear", "object_steady",
                          "object_unstick", "object_unstick_xy", "object_push_slow",
                          "object_home_lift", "object_home_lift_scratch",
                          "object_home_lift_spread", "object_home_lift_latent0",
                          "object_home_lift_scratch_latent0", "object_prior",
                          "object_prior_w02", "object_prior_veto", "object_prior_veto05",
                          "object_prior_veto05_ps1", "object_prior_stall", "object_prior_stall_ps1",
                          "object_prior_stall_heldout")},
          "prior": prior_table,
          "rl_example": rl_example_table,
          "energy_check": energy_check_table, "reader_wide": reader_table,
          "contact_reader": lambda r: reader_table(
              r, "Contact point error of the contact reader", "reports/contact_reader.json")}


# tables made of several reports, reports/NAME_*.json
MULTI_REPORT_TABLES = ("ac_conditioning", "oracle_budget", "oracle_contact", "energy_check",
                       "contact_approach", "object_wm", "object_hold", "planner_luck")


def load_report(name: str) -> dict | None:
    """reports/NAME.json, or for the `MULTI_REPORT_TABLES` every reports/NAME_*.json."""
    if name in ("headline", "progression"):
        names = [r[1] for r in HEADLINE] if name == "headline" else [r[0] for r in PROGRESSION]
        reports = {source: load_report(source) for source in names}
        return None if None in reports.values() else reports
    if name in MULTI_REPORT_TABLES:
        paths = sorted(REPORTS.glob(f"{name}_*.json"))
        return {p.stem.removeprefix(f"{name}_"): json.loads(p.read_text())
                for p in paths} or None
    path = REPORTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def render(readme: str) -> str:
    """README text with every table block regenerated from its report."""
    for name, make in TABLES.items():
        report = load_report(name)
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        if report is None or not pattern.search(readme):
            continue
        block = f"{start}\n{make(report)}\n{end}"
        readme = pattern.sub(lambda m, b=block: b, readme)
    return readme


def main() -> None:
    text = README.read_text()
    new = render(text)
    README.write_text(new)
    print("README tables " + ("updated" if new != text else "already up to date"))


if __name__ == "__main__":
    main()
