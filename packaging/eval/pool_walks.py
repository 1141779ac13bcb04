#!/usr/bin/env python3
"""Pools the per-walk CSV archives of cache_losses.py --csv (docs/eval/*.csv), walk by walk.

    packaging/eval/pool_walks.py [--versus LABEL ...] ARCHIVE.csv [ARCHIVE.csv ...]

A walk is its trajectory, start pose and noise seed (the model and world are those of the
archives given); a walk found in several archives counts once, from the first. For each cache
it prints, over the walks that ran it beside BF16: the rollout loss (BF16's ground-truth PSNR
minus the cache's) and, where the archives have it, the 1-ahead loss, each as mean ± standard
error. --versus LABEL pairs every cache with LABEL over the walks that ran both: the mean
difference of rollout PSNR (and of 1-ahead PSNR), its standard error, the walks ahead, and the
walks a lead of that size would need to show at two standard errors; and, for a typical walk
rather than the mean, the median difference with the two-sided exact sign test's p (how likely
so lopsided a count of walks ahead would be if either cache were ahead on half the walks); and
how much closer to BF16's output (the QVG paper's metric, PSNR per walk) the cache's rollout
stayed than LABEL's, paired.
Uses only the standard library.
"""
import csv
import math
import statistics
import sys


def se(values):
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")


def sign_test(ahead, n):
    """Two-sided exact binomial p of `ahead` successes in `n` trials at one half."""
    if n == 0:
        return float("nan")
    k = min(ahead, n - ahead)
    log_half_n = n * math.log(0.5)
    tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                        + log_half_n) for i in range(k + 1))
    return min(1.0, 2 * tail)


def load(paths):
    """walk -> {cache label: (rollout PSNR, 1-ahead PSNR or None, PSNR against BF16's output)},
    labels in order of appearance."""
    walks, order, owner = {}, [], {}
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                walk = (row["trajectory"].split(" #")[0], row["start_pose_x_y_z_yaw_pitch"],
                        row["noise_seed"])
                if owner.setdefault(walk, path) != path:
                    continue  # the walk came first in another archive
                label = row["cache"]
                if label not in order:
                    order.append(label)
                ahead = float(row["ahead_psnr"]) if row.get("ahead_psnr") else None
                vs = row.get("rollout_psnr_vs_bf16_output")
                walks.setdefault(walk, {})[label] = (float(row["rollout_psnr"]), ahead,
                                                     float(vs) if vs else None)
    return walks, order


def main(paths, versus):
    walks, order = load(paths)
    if "BF16" not in order:
        sys.exit("no BF16 rows in the archives: losses are taken against BF16")
    print("| cache | walks | rollout loss | 1-ahead walks | 1-ahead loss |")
    print("|---|---|---|---|---|")
    for label in order:
        pairs = [w for w in walks.values() if label in w and "BF16" in w]
        loss = [w["BF16"][0] - w[label][0] for w in pairs]
        ahead = [w["BF16"][1] - w[label][1] for w in pairs
                 if w[label][1] is not None and w["BF16"][1] is not None]
        ahead_cell = f"{statistics.mean(ahead):+.3f} ± {se(ahead):.3f}" if ahead else "-"
        print(f"| {label} | {len(loss)} | {statistics.mean(loss):+.3f} ± {se(loss):.3f} "
              f"| {len(ahead)} | {ahead_cell} |")
    for ref in versus:
        if ref not in order:
            sys.exit(f"--versus {ref!r}: no such cache in the archives (have: {', '.join(order)})")
        print(f"\n| cache | minus {ref}, paired | walks | ahead | walks for 2 SE at this lead "
              "| median | sign test p | 1-ahead minus, paired | 1-ahead walks "
              "| closer to BF16's output, paired | walks closer |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for label in order:
            if label == ref:
                continue
            both = [w for w in walks.values() if label in w and ref in w]
            if len(both) < 2:
                continue
            diff = [w[label][0] - w[ref][0] for w in both]
            m, sd = statistics.mean(diff), statistics.stdev(diff)
            need = f"{math.ceil((2 * sd / m) ** 2)}" if m != 0 else "-"
            ahead = [w[label][1] - w[ref][1] for w in both
                     if w[label][1] is not None and w[ref][1] is not None]
            ahead_cell = f"{statistics.mean(ahead):+.3f} ± {se(ahead):.3f}" if len(ahead) > 1 else "-"
            closer = [w[label][2] - w[ref][2] for w in both
                      if w[label][2] is not None and w[ref][2] is not None]
            closer_cell = (f"{statistics.mean(closer):+.2f} ± {se(closer):.2f} dB"
                           if len(closer) > 1 else "-")
            ahead_walks = sum(x > 0 for x in diff)
            # Ties (equal PSNR) are no evidence either way: the sign test leaves them out.
            decided = sum(x != 0 for x in diff)
            print(f"| {label} | {m:+.3f} ± {se(diff):.3f} | {len(diff)} "
                  f"| {ahead_walks} | {need} | {statistics.median(diff):+.3f} "
                  f"| {sign_test(ahead_walks, decided):.3g} | {ahead_cell} | {len(ahead)} "
                  f"| {closer_cell} | {sum(x > 0 for x in closer)} |")


if __name__ == "__main__":
    args, versus = sys.argv[1:], []
    while len(args) >= 2 and args[0] == "--versus":
        versus.append(args[1])
        args = args[2:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    main(args, versus)
