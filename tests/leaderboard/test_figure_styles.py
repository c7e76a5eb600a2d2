"""A variant's colour and marker in the leaderboard's figures come from the variant itself: the same in two
builds whose variant sets differ, well apart from the other variants' colours of one figure."""
import itertools

import numpy as np

from benchmark.leaderboard.figures import variant_styles

LABELS = [("zeroshot", "tiny"), ("knnclip", "tiny"), ("joint", "tiny"), ("finetune", "tiny"), ("ewc", "tiny"),
          ("lwf", "tiny"), ("replay", "tiny"), *[(f"knnclip k={k}", "tiny") for k in (1, 2, 4, 8, 32, 64)],
          *[(f"knnclip λ={v}", "tiny") for v in (0.3, 0.5, 0.9)], ("knnclip vote=uniform", "tiny"),
          ("knnclip T=0.0", "tiny"), ("knnclip tau=0.05", "tiny"), ("knnclip void=drop", "tiny")]


def test_a_variant_keeps_its_style_in_builds_with_other_variants():
    first, second = LABELS[:9], [LABELS[1], LABELS[0], *LABELS[9:], LABELS[3]]  # other variants, another ranking
    own = {key: variant_styles([key])[key] for key in LABELS}  # each one's style alone
    a, b = variant_styles(first), variant_styles(second)
    kept = [key for key in set(first) & set(second)  # no other variant of either build wants its colour
            if not any(own[other].color == own[key].color for other in {*first, *second} - {key})]
    assert len(kept) >= 2 and all(a[key] == b[key] == own[key] for key in kept)
    assert variant_styles(LABELS) == variant_styles(list(reversed(LABELS)))  # not from the rank


def test_no_two_variants_of_a_figure_get_near_identical_colours():
    styles = variant_styles(LABELS)
    assert len(LABELS) == 20 and len({style.color for style in styles.values()}) == 20
    distance = min(np.linalg.norm(np.subtract(a.color[:3], b.color[:3]))
                   for a, b in itertools.combinations(styles.values(), 2))
    assert distance > 0.2
    many = variant_styles([(f"variant {i}", "m") for i in range(140)])
    assert len({(style.color, style.marker) for style in many.values()}) == 140
