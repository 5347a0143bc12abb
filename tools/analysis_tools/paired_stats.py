"""Seed statistics of the experiment tables: mean +- std per arm and paired
differences of a distilled arm against its baseline.

Runs with the same seed share the data order and the student's
initialisation, so ``arm[seed] - baseline[seed]`` removes the seed's own
effect; the 95 % interval is the Student-t interval over these differences,
``mean +- t_{0.975, n-1} * sd / sqrt(n)`` (``sd`` the sample standard
deviation, n - 1 degrees of freedom). Used by
``tools/experiments/collect_paired_protocol.py``.
"""
import math
import statistics
from typing import Dict, List, Mapping, Optional, Sequence


def t_quantile(p: float, df: int) -> float:
    """Quantile ``p`` of Student's t distribution with ``df`` degrees of
    freedom (scipy, installed with mmdet)."""
    if df < 1:
        raise ValueError(f't quantile needs df >= 1, got {df}')
    from scipy.stats import t
    return float(t.ppf(p, df))


def mean_std(values: Sequence[float]) -> tuple:
    """``(mean, sample std)``; the std is None for one value."""
    if not values:
        raise ValueError('mean_std of no values')
    mean = statistics.mean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def format_mean_std(values: Sequence[float],
                    scale: float = 1.0,
                    digits: int = 2,
                    empty: str = 'n/a') -> str:
    """``'m ± s'`` of ``values * scale``; ``'m'`` for one value."""
    if not values:
        return empty
    mean, std = mean_std([v * scale for v in values])
    if std is None:
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ± {std:.{digits}f}'


def paired_comparison(arm: Mapping[str, float],
                      baseline: Mapping[str, float],
                      confidence: float = 0.95,
                      unpaired: str = 'raise') -> Dict:
    """Paired differences ``arm[seed] - baseline[seed]``.

    Args:
        arm, baseline: value per seed name (e.g. ``{'seed0': 88.1}``).
        confidence: level of the two-sided t-interval.
        unpaired: what to do with seeds only one arm has: ``'raise'``
            (ValueError naming them) or ``'drop'`` (pair the common seeds
            and list the others under ``arm_only`` / ``baseline_only``).

    Returns:
        dict with ``seeds`` (paired, sorted), ``diffs``, ``n``, ``mean``,
        ``sd`` (None for n = 1), ``half_width`` and ``ci`` ``(low, high)``
        (None for n = 1: one difference has no spread to build an interval
        from), ``wins`` / ``losses`` / ``ties`` (seeds where the arm is
        above / below / equal to the baseline), ``arm_only``,
        ``baseline_only`` and ``confidence``.
    """
    if unpaired not in ('raise', 'drop'):
        raise ValueError(f"unpaired must be 'raise' or 'drop', got "
                         f'{unpaired!r}')
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must be in (0, 1), got {confidence}')
    arm_only = sorted(set(arm) - set(baseline), key=seed_key)
    base_only = sorted(set(baseline) - set(arm), key=seed_key)
    if (arm_only or base_only) and unpaired == 'raise':
        raise ValueError(
            'paired comparison needs the same seeds in both arms; only in '
            f'the distilled arm: {arm_only or "none"}, only in the baseline: '
            f'{base_only or "none"}. Finish the missing runs or pass '
            "unpaired='drop' to compare the common seeds.")
    seeds = sorted(set(arm) & set(baseline), key=seed_key)
    if not seeds:
        raise ValueError('the two arms have no seed in common: '
                         f'{sorted(arm)} vs {sorted(baseline)}')
    diffs = [arm[s] - baseline[s] for s in seeds]
    n = len(diffs)
    mean = statistics.mean(diffs)
    sd = half = ci = None
    if n > 1:
        sd = statistics.stdev(diffs)
        half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
        ci = (mean - half, mean + half)
    return dict(
        seeds=seeds,
        diffs=diffs,
        n=n,
        mean=mean,
        sd=sd,
        half_width=half,
        ci=ci,
        wins=sum(d > 0 for d in diffs),
        losses=sum(d < 0 for d in diffs),
        ties=sum(d == 0 for d in diffs),
        arm_only=arm_only,
        baseline_only=base_only,
        confidence=confidence)


def format_level(confidence: float) -> str:
    """``0.95`` -> ``'95'``, ``1 - 0.05 / 9`` -> ``'99.44'``."""
    return f'{100 * confidence:.2f}'.rstrip('0').rstrip('.')


def interval_text(comparison: Dict, scale: float = 1.0,
                  digits: int = 2) -> str:
    """``'[low, high] (excludes 0)'`` of a comparison with an interval."""
    f = f'+.{digits}f'
    low, high = (v * scale for v in comparison['ci'])
    where = 'excludes 0' if low > 0 or high < 0 else 'includes 0'
    return f'[{low:{f}}, {high:{f}}] ({where})'


def format_comparison(comparison: Dict,
                      label: str,
                      metric: str,
                      scale: float = 1.0,
                      digits: int = 2,
                      baseline: str = 'baseline',
                      corrected: Optional[Dict] = None) -> str:
    """One table line: mean paired difference, its t-interval and the
    per-seed wins, e.g. ``ReviewKD - baseline (mean final top-1): +1.60;
    better than the baseline of the same seed on 3 of 3 seeds; 95 % CI of
    the paired difference [+0.21, +2.99] (excludes 0)``; with
    ``corrected`` (the same comparison at a Bonferroni-corrected level, its
    ``family`` the number of comparisons) also that interval."""
    c = comparison
    f = f'+.{digits}f'
    text = (f'{label} - {baseline} (mean final {metric}): '
            f"{c['mean'] * scale:{f}}; better than the {baseline} of the "
            f"same seed on {c['wins']} of {c['n']} seeds")
    if c['ci'] is None:
        text += '; one seed: no interval'
    else:
        text += (f"; {format_level(c['confidence'])} % CI of the paired "
                 f'difference {interval_text(c, scale, digits)}')
        if corrected is not None:
            text += (f"; Bonferroni-corrected for {corrected['family']} "
                     f"comparisons ({format_level(corrected['confidence'])} "
                     f'%): {interval_text(corrected, scale, digits)}')
    left = [f'{s} (distilled only)' for s in c['arm_only']]
    left += [f'{s} ({baseline} only)' for s in c['baseline_only']]
    if left:
        text += f"; unpaired, left out: {', '.join(left)}"
    return text


def seed_key(name: str) -> tuple:
    """Sort ``seed2`` before ``seed10``."""
    digits = ''.join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else -1, name)


def comparison_lines(arms: Mapping[str, Mapping[str, float]],
                     labels: Mapping[str, str],
                     baseline: str,
                     metric: str,
                     scale: float = 1.0,
                     confidence: float = 0.95,
                     reference: str = 'baseline',
                     family: Optional[int] = None) -> List[str]:
    """``'- '`` + :func:`format_comparison` for every arm but ``baseline``
    that has seeds (pairing the common seeds, the others listed);
    ``reference`` names the ``baseline`` arm in the text. ``family``: the
    number of comparisons of the whole protocol, for a Bonferroni-corrected
    interval at ``1 - (1 - confidence) / family`` beside each one."""
    base = arms.get(baseline) or {}
    if not base:
        return []
    lines = []
    for name, values in arms.items():
        if name == baseline or not values:
            continue
        if not set(values) & set(base):
            lines.append(f'- {labels[name]}: no seed in common with the '
                         f'{labels[baseline]}')
            continue
        comp = paired_comparison(values, base, confidence, unpaired='drop')
        corrected = None
        if family and comp['n'] > 1:
            corrected = paired_comparison(
                values, base, 1 - (1 - confidence) / family, unpaired='drop')
            corrected['family'] = family
        lines.append('- ' + format_comparison(
            comp, labels[name], metric, scale, baseline=reference,
            corrected=corrected))
    return lines
