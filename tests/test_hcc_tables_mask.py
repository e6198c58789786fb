"""The bit-mask reference of the set-based V28 scorer (``tables.mask_reference``)."""

from __future__ import annotations

import pytest

from openlead.risk import tables as T

YEAR = 2026


@pytest.fixture(scope="module")
def mr() -> T.MaskReference:
    return T.mask_reference(T.V28, YEAR)


@pytest.fixture(scope="module")
def cc_bits(mr: T.MaskReference) -> dict[int, tuple[int, int]]:
    """CC -> (word, bit): the family's offset in its word plus the CC's bit inside the family."""
    ref = T.cc_reference(T.V28, YEAR)
    place = {f: (w, o) for f, w, o in zip(mr.fams.fam, mr.fams.word, mr.fams.off, strict=True)}
    return {
        int(cc): (place[int(f)][0], int(b) << place[int(f)][1])
        for f, cc, b in zip(ref.fam_cc.fam, ref.fam_cc.cc, ref.fam_cc.bit, strict=True)
    }


def _edited(mr: T.MaskReference, p: int, fires: set[int]) -> list[int]:
    """The scorer's edit arithmetic (hcc._edited) in plain Python."""
    out = [0] * mr.words
    for cls, word, pmask, shift in mr.shift_groups:
        if cls not in fires:
            out[word] |= (p & pmask) >> shift if shift >= 0 else (p & pmask) << -shift
    for cls, j, bw, bv, ow, ov in mr.overrides:
        if p >> j & 1:
            if cls in fires:
                out[ow] |= ov
            else:
                out[bw] |= bv
    return out


def test_families_fit_their_words(mr: T.MaskReference) -> None:
    assert mr.words == 2  # 115 V28 CCs in words of 62 bits
    for word in range(mr.words):
        fams = mr.fams[mr.fams.word == word].sort_values("off")
        ends = (fams.off + fams.full.map(lambda f: int(f).bit_length())).tolist()
        assert all(e <= o for e, o in zip(ends, fams.off.tolist()[1:], strict=False))  # no overlap
        assert max(ends) <= T.WORD_BITS


def test_pseudo_bits_give_each_code_its_ccs_or_their_edit(
    mr: T.MaskReference, cc_bits: dict[int, tuple[int, int]]
) -> None:
    d = T.cc_reference(T.V28, YEAR).dx_ref
    edited = d[d.edit_type.notnull()]
    assert len(edited) > 400
    p_of = dict(zip(mr.dx_bits.dx, mr.dx_bits.p, strict=True))
    classes = {c: k for k, c in enumerate(mr.edit_classes)}
    for dx, rows in edited.groupby("dx"):
        p = int(p_of[dx])
        unedited = [0] * mr.words
        for cc in rows.cc:
            w, b = cc_bits[int(cc)]
            unedited[w] |= b
        assert _edited(mr, p, set()) == unedited, dx  # no class fires: the code's own CCs
        for _, r in rows.iterrows():
            key = (
                r.edit_type,
                None if r.edit_sex is None or r.edit_sex != r.edit_sex else r.edit_sex,
                None if r.age_min != r.age_min else r.age_min,
                None if r.age_max != r.age_max else r.age_max,
                r.action,
            )
            got = _edited(mr, p, {classes[key]})
            if r.action == "invalid" and len(rows) == 1:
                assert got == [0] * mr.words, dx  # e.g. a newborn code for an adult: no CC
            if r.action == "override":
                w, b = cc_bits[int(r.cc_override)]
                assert got[w] & b, dx  # the override CC replaces the code's CC


def test_each_sub_mask_is_solved_by_conditions_then_hierarchies(mr: T.MaskReference) -> None:
    ref = T.cc_reference(T.V28, YEAR)
    fam17 = ref.fam_cc[ref.fam_cc.fam == 17].set_index("cc")  # CCs 17..23, a chain of hierarchies
    both = int(fam17.bit[17] | fam17.bit[23])
    alive = mr.res[(mr.res.fam == 17) & (mr.res.sm == both)]
    assert alive.cc.tolist() == [17]  # 23 is dropped by its parent 17
    (fam, cbit, _req) = ref.conditional[0]  # V28: HCC 223 only with another heart-failure HCC
    alone = mr.res[(mr.res.fam == fam) & (mr.res.sm == cbit)]
    assert alone.empty
    # the group bits of a sub-mask are carried once, by its lowest surviving CC
    per = mr.res.groupby(["fam", "sm"]).gm.apply(lambda g: int((g != 0).sum()))
    assert per.max() <= 1
