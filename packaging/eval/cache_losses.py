#!/usr/bin/env python3
"""Per-cache losses against the BF16 cache from `qvg eval --json` reports, walk by walk.

    packaging/eval/cache_losses.py [--versus LABEL ...] [--csv FILE] REPORT.json [REPORT.json ...]

Every report must list BF16 first among its caches (qvg eval's own order when `bf16` is given
first). For each cache it prints, over all walks of all reports:
  - rollout loss: BF16's mean ground-truth PSNR minus the cache's, per walk, then the mean and
    its standard error, how many walks gained (loss < 0), and the mean loss per quarter of the
    rollout (the drift shows in the later quarters);
  - 1-ahead loss: the same one chunk ahead (every chunk predicted from the ground-truth history,
    so only the quantized history differs and nothing drifts), when the reports have it;
  - PSNR against BF16's output (the QVG paper's metric), pooled over all frames, rollout and
    1 chunk ahead;
  - the detail ratio of the rollouts (their fine structure over the ground truth's), pooled,
    when the reports have it.
--versus LABEL pairs every cache with LABEL walk by walk (the same walk in any report): the mean
difference of rollout PSNR, and of 1-ahead PSNR where the reports have it, with its standard
error and how many walks came out ahead. --csv FILE writes one row per walk and cache (rollout
and 1-ahead PSNR and losses) for the archive.
Uses only the standard library.
"""
import csv
import json
import math
import os
import statistics
import sys


def pooled_psnr(values):
    """PSNR of the pooled mean squared error of frames given by their PSNRs (peak 255)."""
    if not values:
        return float("nan")
    mse = sum(255.0**2 / 10 ** (p / 10) for p in values) / len(values)
    return 10 * math.log10(255.0**2 / mse) if mse > 0 else 100.0


def quarters(psnr):
    n = len(psnr) // 4
    return [statistics.mean(psnr[i * n:(i + 1) * n]) for i in range(4)] if n else [float("nan")] * 4


def se(values):
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")


def main(paths, versus, csv_path=None):
    rows, order = {}, []
    archive = []
    # label -> {walk: rollout mean PSNR}; a walk is its trajectory, start pose, noise and model,
    # so reports of different caches over the same walks pair up.
    walk_psnr = {}
    walk_ahead = {}  # the same, one chunk ahead (reports that ran it)
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        for t in report["trajectories"]:
            base = t["runs"][0]
            walk = json.dumps([report["model"], report["options"]["world_seed"], t["name"],
                               t["start_pose"], t["noise_seed"], t["generated_frames"]],
                              sort_keys=True)
            if base["cache"] != "bf16":
                sys.exit(f"{path}: {t['name']}: the first cache is {base['cache']}, not bf16")
            bq = quarters(base["rollout"]["psnr"])
            for r in t["runs"]:
                label = r["label"]
                if label not in rows:
                    rows[label] = {"kv": [], "psnr": [], "loss": [], "q": [], "ahead": [],
                                   "vs": [], "ahead_vs": [], "detail": [0.0, 0.0]}
                    order.append(label)
                d = rows[label]
                walk_psnr.setdefault(label, {})[walk] = r["rollout"]["mean_psnr"]
                pose = t["start_pose"]
                archive.append([
                    os.path.basename(path), report.get("device", ""),
                    report["options"].get("walk_seed", ""), t["name"],
                    " ".join(f"{pose[k]:.4f}" for k in ("x", "y", "z", "yaw_deg", "pitch_deg")),
                    t["noise_seed"], label, r["kv_bytes"], f"{r['rollout']['mean_psnr']:.4f}",
                    f"{base['rollout']['mean_psnr'] - r['rollout']['mean_psnr']:.4f}",
                    f"{pooled_psnr(r['psnr_vs_bf16']):.4f}",
                    f"{r['revisit']['mean_psnr']:.4f}" if r.get("revisit") else "",
                    f"{r['rollout']['detail_ratio']:.4f}" if r["rollout"].get("detail_ratio") else "",
                    f"{r['ahead']['mean_psnr']:.4f}" if r.get("ahead") else "",
                    f"{base['ahead']['mean_psnr'] - r['ahead']['mean_psnr']:.4f}"
                    if r.get("ahead") and base.get("ahead") else ""])
                d["kv"].append(r["kv_bytes"])
                d["psnr"].append(r["rollout"]["mean_psnr"])
                d["loss"].append(base["rollout"]["mean_psnr"] - r["rollout"]["mean_psnr"])
                d["q"].append([b - c for b, c in zip(bq, quarters(r["rollout"]["psnr"]))])
                d["vs"].extend(r["psnr_vs_bf16"])
                if r.get("ahead") and base.get("ahead"):
                    walk_ahead.setdefault(label, {})[walk] = r["ahead"]["mean_psnr"]
                    d["ahead"].append(base["ahead"]["mean_psnr"] - r["ahead"]["mean_psnr"])
                    d["ahead_vs"].extend(r["ahead"]["psnr_vs_bf16"])
                ratio = r["rollout"].get("detail_ratio")
                if ratio:
                    s = sum(r["rollout"]["detail"])
                    d["detail"][0] += s
                    d["detail"][1] += s / ratio
    print("| cache | KV | walks | rollout PSNR | rollout loss | walks gaining | loss by quarter "
          "| 1-ahead loss | rollout vs BF16 | 1-ahead vs BF16 | detail |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label in order:
        d = rows[label]
        bf16 = label == order[0]
        q = [statistics.mean(x[i] for x in d["q"]) for i in range(4)]
        ahead = (f"{statistics.mean(d['ahead']):+.3f} ± {se(d['ahead']):.3f}"
                 if d["ahead"] else "-")
        detail = f"{d['detail'][0] / d['detail'][1]:.3f}" if d["detail"][1] > 0 else "-"
        vs = "-" if bf16 else f"{pooled_psnr(d['vs']):.2f}"
        ahead_vs = "-" if bf16 or not d["ahead_vs"] else f"{pooled_psnr(d['ahead_vs']):.2f}"
        by_quarter = " / ".join(f"{x:+.2f}" for x in q)
        print(f"| {label} | {statistics.mean(d['kv']) / 2**20:.2f} MiB | {len(d['loss'])} "
              f"| {statistics.mean(d['psnr']):.2f} "
              f"| {statistics.mean(d['loss']):+.3f} ± {se(d['loss']):.3f} "
              f"| {sum(x < 0 for x in d['loss'])} | {by_quarter} | {ahead} | {vs} | {ahead_vs} "
              f"| {detail} |")
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["report", "device", "walk_seed", "trajectory", "start_pose_x_y_z_yaw_pitch",
                        "noise_seed", "cache", "kv_bytes", "rollout_psnr", "loss_vs_bf16",
                        "rollout_psnr_vs_bf16_output", "revisit_psnr", "detail_ratio",
                        "ahead_psnr", "ahead_loss_vs_bf16"])
            w.writerows(archive)
    for ref in versus:
        if ref not in walk_psnr:
            sys.exit(f"--versus {ref!r}: no such cache in the reports (have: {', '.join(order)})")
        for what, per_walk in (("rollout", walk_psnr), ("1-ahead", walk_ahead)):
            if ref not in per_walk:
                continue
            print(f"\n| cache | {what} PSNR minus {ref}'s, paired | walks ahead | walks |")
            print("|---|---|---|---|")
            for label in order:
                if label == ref or label not in per_walk:
                    continue
                keys = [k for k in per_walk[label] if k in per_walk[ref]]
                diff = [per_walk[label][k] - per_walk[ref][k] for k in keys]
                if not diff:
                    continue
                print(f"| {label} | {statistics.mean(diff):+.3f} ± {se(diff):.3f} "
                      f"| {sum(x > 0 for x in diff)} | {len(diff)} |")


if __name__ == "__main__":
    args, versus, csv_path = sys.argv[1:], [], None
    while len(args) >= 2 and args[0] in ("--versus", "--csv"):
        if args[0] == "--versus":
            versus.append(args[1])
        else:
            csv_path = args[1]
        args = args[2:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    main(args, versus, csv_path)
