"""Ratios of timings taken side by side, shared by the CPU benchmarks.

Both benchmarks time the code under test and its baseline in rounds (ours, baseline, ours,
baseline, ...). The best of N of each gives one ratio; on a machine whose speed drifts or
that other jobs share (a virtual machine's neighbours), that ratio may pair a lucky round of
one with an ordinary round of the other. The ratio of each round's two times compares what
ran side by side, and the median of those is the second figure the benchmarks print.
"""


def paired_ratios(num, den):
    """round i of ``num`` over round i of ``den`` for every round, sorted."""
    if len(num) != len(den) or not num:
        raise ValueError('paired_ratios needs two equally long, non-empty lists of rounds '
                         '(got %d and %d)' % (len(num), len(den)))
    return sorted(a / b for a, b in zip(num, den))


def median(values):
    """the median of a non-empty list of numbers."""
    v = sorted(values)
    if not v:
        raise ValueError('median of no values')
    h = len(v) // 2
    return v[h] if len(v) % 2 else (v[h - 1] + v[h]) / 2


def paired_summary(num, den):
    """'rounds: median M, range A-B' of :func:`paired_ratios`, or '' for a single round."""
    if len(num) < 2:
        return ''
    r = paired_ratios(num, den)
    return 'rounds: median %.3f, range %.3f-%.3f' % (median(r), r[0], r[-1])
