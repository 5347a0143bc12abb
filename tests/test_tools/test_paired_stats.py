"""tools/analysis_tools/paired_stats.py against hand computations."""
import math

import pytest

from paired_stats import (comparison_lines, format_comparison,
                          format_mean_std, mean_std, paired_comparison,
                          t_quantile)

# two-sided 95 % quantiles t_{0.975, df} of a printed t table
T975 = {1: 12.706205, 2: 4.302653, 4: 2.776445}


@pytest.mark.parametrize('df', sorted(T975))
def test_t_quantile_matches_the_table(df):
    assert t_quantile(0.975, df) == pytest.approx(T975[df], abs=1e-6)
    assert t_quantile(0.025, df) == pytest.approx(-T975[df], abs=1e-6)
    with pytest.raises(ValueError, match='df >= 1'):
        t_quantile(0.975, 0)


def test_interval_of_differences_1_2_3():
    base = {'seed0': 10.0, 'seed1': 20.0, 'seed2': 30.0}
    arm = {'seed0': 11.0, 'seed1': 22.0, 'seed2': 33.0}  # diffs 1, 2, 3
    c = paired_comparison(arm, base)
    assert c['seeds'] == ['seed0', 'seed1', 'seed2']
    assert c['diffs'] == [1.0, 2.0, 3.0]
    assert c['n'] == 3 and c['mean'] == pytest.approx(2.0)
    assert c['sd'] == pytest.approx(1.0)  # sqrt(((-1)^2 + 0 + 1^2) / 2)
    half = 4.302653 / math.sqrt(3)
    assert c['half_width'] == pytest.approx(half, abs=1e-6)
    assert c['ci'][0] == pytest.approx(2 - half, abs=1e-6)
    assert c['ci'][1] == pytest.approx(2 + half, abs=1e-6)
    assert (c['wins'], c['losses'], c['ties']) == (3, 0, 0)
    line = format_comparison(c, 'KD', 'top-1')
    assert line.startswith('KD - baseline (mean final top-1): +2.00; ')
    assert 'on 3 of 3 seeds' in line
    assert (f'95 % CI of the paired difference [{2 - half:+.2f}, '
            f'{2 + half:+.2f}] (includes 0)') in line  # 2 - 2.48 < 0


def test_90_percent_interval_and_scale():
    base = {f'seed{i}': 0.0 for i in range(5)}
    arm = {f'seed{i}': v for i, v in enumerate([0.1, 0.3, 0.2, 0.2, 0.2])}
    c = paired_comparison(arm, base, confidence=0.90)
    sd = math.sqrt((0.01 + 0.01) / 4)  # mean 0.2
    half = 2.131847 * sd / math.sqrt(5)  # t_{0.95, 4}
    assert c['ci'] == pytest.approx((0.2 - half, 0.2 + half), abs=1e-6)
    line = format_comparison(c, 'X', 'mAP (%)', scale=100)
    assert (f'90 % CI of the paired difference [{100 * (0.2 - half):+.2f}, '
            f'{100 * (0.2 + half):+.2f}] (excludes 0)') in line
    assert ': +20.00;' in line


def test_one_seed_gives_no_interval():
    c = paired_comparison({'seed0': 3.0}, {'seed0': 1.0})
    assert c['n'] == 1 and c['mean'] == 2.0
    assert c['sd'] is None and c['ci'] is None and c['half_width'] is None
    assert 'one seed: no interval' in format_comparison(c, 'A', 'm')


def test_wins_losses_ties_per_seed():
    base = {'seed0': 5.0, 'seed1': 5.0, 'seed2': 5.0, 'seed10': 5.0}
    arm = {'seed0': 6.0, 'seed1': 4.5, 'seed2': 5.0, 'seed10': 7.0}
    c = paired_comparison(arm, base)
    assert c['seeds'] == ['seed0', 'seed1', 'seed2', 'seed10']
    assert c['diffs'] == [1.0, -0.5, 0.0, 2.0]
    assert (c['wins'], c['losses'], c['ties']) == (2, 1, 1)
    assert 'on 2 of 4 seeds' in format_comparison(c, 'A', 'm')


def test_mismatched_seeds_are_refused_or_reported():
    base = {'seed0': 1.0, 'seed1': 2.0, 'seed3': 0.0}
    arm = {'seed0': 2.0, 'seed1': 2.5, 'seed2': 9.0}
    with pytest.raises(ValueError) as err:
        paired_comparison(arm, base)
    assert "['seed2']" in str(err.value) and "['seed3']" in str(err.value)
    c = paired_comparison(arm, base, unpaired='drop')
    assert c['seeds'] == ['seed0', 'seed1'] and c['diffs'] == [1.0, 0.5]
    assert c['arm_only'] == ['seed2'] and c['baseline_only'] == ['seed3']
    line = format_comparison(c, 'A', 'm')
    assert 'on 2 of 2 seeds' in line
    assert ('unpaired, left out: seed2 (distilled only), seed3 (baseline '
            'only)') in line
    with pytest.raises(ValueError, match='no seed in common'):
        paired_comparison({'seed5': 1.0}, {'seed6': 1.0}, unpaired='drop')
    with pytest.raises(ValueError, match='unpaired'):
        paired_comparison(arm, base, unpaired='ignore')


def test_comparison_lines_skip_the_baseline_and_empty_arms():
    arms = dict(
        base={
            'seed0': 1.0,
            'seed1': 2.0
        },
        kd={
            'seed0': 2.0,
            'seed1': 4.0
        },
        empty={},
        other={'seed7': 1.0})
    labels = dict(base='B', kd='KD', empty='E', other='O')
    lines = comparison_lines(arms, labels, 'base', 'top-1')
    assert len(lines) == 2
    assert lines[0].startswith('- KD - baseline (mean final top-1): +1.50;')
    assert lines[1] == '- O: no seed in common with the B'
    assert comparison_lines(
        dict(base={}, kd={'seed0': 1.0}), labels, 'base', 'top-1') == []


def test_mean_std_formatting():
    assert mean_std([1.0, 2.0, 4.0]) == (pytest.approx(7 / 3),
                                         pytest.approx(math.sqrt(7 / 3)))
    assert format_mean_std([0.1, 0.2],
                           scale=100) == (f'15.00 ± {math.sqrt(50):.2f}')
    assert format_mean_std([88.0]) == '88.00'
    assert format_mean_std([]) == 'n/a'
    with pytest.raises(ValueError):
        mean_std([])


def test_bonferroni_corrected_interval_beside_the_95_percent_one():
    """``family=m``: a second interval at 1 - 0.05 / m, t quantile with
    n - 1 degrees of freedom, computed here by hand from the differences."""
    from scipy.stats import t
    arms = dict(base={f'seed{i}': 0.0 for i in range(4)},
                kd={'seed0': 1.0, 'seed1': 2.0, 'seed2': 0.5, 'seed3': 2.5})
    diffs = [1.0, 2.0, 0.5, 2.5]
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((d - mean)**2 for d in diffs) / 3)
    half95 = t.ppf(0.975, 3) * sd / 2
    half_c = t.ppf(1 - 0.05 / 9 / 2, 3) * sd / 2
    assert half_c > half95
    line = comparison_lines(arms, dict(base='B', kd='KD'), 'base', 'mIoU',
                            family=9)[0]
    assert (f'95 % CI of the paired difference [{mean - half95:+.2f}, '
            f'{mean + half95:+.2f}] (excludes 0)') in line
    assert ('Bonferroni-corrected for 9 comparisons (99.44 %): '
            f'[{mean - half_c:+.2f}, {mean + half_c:+.2f}] (includes 0)'
            ) in line
    # without a family: the line is unchanged, no corrected interval
    assert 'Bonferroni' not in comparison_lines(
        arms, dict(base='B', kd='KD'), 'base', 'mIoU')[0]
