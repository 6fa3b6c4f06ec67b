"""symback.grammar.names: the one name grammar (w(L)_j_k, a(L-1), x_2, C, user names), parsed and written back."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symback.errors import SpecError
from symback.grammar.names import ANY, LAYER_PATTERN, NODE_PATTERN, Layer, Name, is_identifier, number, parse
from symback.symbolic.network import Network, NodeRef

# The grammar as network.py wrote it before symback.grammar.names (kept here as an independent oracle).
OLD_NETWORK_NAME = re.compile(
    r"""(?P<kind>[wbza])\(\s*(?P<layer>L(?:\s*-\s*\d+)?|\d+)\s*\)
        (?:_(?P<j>\d+|\*)(?:_(?P<k>\d+|\*))?)?""",
    re.VERBOSE | re.ASCII,
)
OLD_XY = re.compile(r"(?P<kind>[xy])(?:_(?P<j>\d+))?", re.ASCII)
OLD_CLAIMS_NODE = re.compile(r"[wbza]\(\s*(?:L(?:\s*-\s*\d+)?|\d+)\s*\)(?:_\d+(?:_\d+)?)?")


def old_index(digits: str) -> int:
    """network.py's old rule: more than 18 digits is out of range in any network (10**18)."""
    return int(digits) if len(digits) <= 18 else 10**18

small = st.integers(min_value=0, max_value=10**6)
layers = st.builds(Layer, small, st.booleans())
index = st.one_of(small, st.just(ANY))
layered = st.builds(
    Name,
    st.from_regex(r"[A-Za-z]{1,6}", fullmatch=True),
    layers,
    st.lists(index, max_size=4).map(tuple),
)
unlayered = st.builds(Name, st.sampled_from(["x", "y"]), st.none(), st.tuples(small))
plain = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
    lambda text: not re.fullmatch(r"[xy]_[0-9]+", text)  # x_3 is the input's entry 3, not a plain name
).map(Name)
names = st.one_of(layered, unlayered, plain)


@given(names)
def test_parse_reads_back_what_str_writes(name):
    assert parse(str(name)) == name


@given(layered)
def test_spaces_inside_the_parentheses_are_dropped(name):
    spaced = str(name).replace("(", "( ").replace(")", " )").replace("L-", "L - ")
    assert parse(spaced) == name
    assert str(parse(spaced)) == str(name)


@given(st.from_regex(OLD_NETWORK_NAME, fullmatch=True))
def test_every_name_the_old_network_regex_read_is_read_alike(text):
    old = OLD_NETWORK_NAME.fullmatch(text)
    name = parse(text)
    assert name is not None and name.base == old["kind"]
    # (network.py dropped only " ": "a(L\t-1)" raised ValueError there; every space is dropped now)
    label = re.sub(r"\s", "", old["layer"])
    if label[0] == "L":
        assert name.layer == Layer(old_index(label[2:]) if len(label) > 1 else 0, from_output=True)
    else:
        assert name.layer == Layer(old_index(label))
    written = [i for i in (old["j"], old["k"]) if i is not None]
    assert name.indices == tuple(ANY if i == "*" else old_index(i) for i in written)


@given(st.from_regex(OLD_XY, fullmatch=True))
def test_inputs_and_targets_are_read_as_the_old_regex_read_them(text):
    old = OLD_XY.fullmatch(text)
    assert parse(text) == Name(old["kind"], None, (old_index(old["j"]),) if old["j"] else ())


@given(st.text(alphabet="wbzaxyLC()_-*01 9", max_size=14))
def test_a_layered_name_of_a_network_kind_is_exactly_what_the_old_regex_accepted(text):
    name = parse(text)
    # (a name may carry up to four indices now, a conv2d kernel entry's; the old grammar's had at most two)
    is_node = (name is not None and name.layer is not None and name.base in "wbza" and len(name.base) == 1
               and len(name.indices) <= 2)
    assert is_node == (OLD_NETWORK_NAME.fullmatch(text) is not None)
    concrete = is_node and not name.wildcard
    assert concrete == (re.fullmatch(NODE_PATTERN, text) is not None) == (OLD_CLAIMS_NODE.fullmatch(text) is not None)


@given(st.text(alphabet="L-0123 \t", max_size=8))
def test_the_layer_pattern_is_the_layer_of_a_name(text):
    # spaces around the layer belong to the parentheses, not to the layer
    assert (re.fullmatch(LAYER_PATTERN, text.strip()) is not None) == (parse(f"a({text})") is not None)


@pytest.mark.parametrize("text", ["", "w(L", "w(L)_", "w(L)_0_1_2_3_4", "w(L+1)", "2b", "w(٣)", "w(L)_0\n", "x_*",
                                  "b 3"])
def test_what_is_not_a_name(text):
    assert parse(text) is None


def test_a_number_too_long_for_any_network_is_out_of_range_not_an_error():
    name = parse("w(L)_" + "9" * 5000 + "_0")
    assert name is not None and name.indices[0] == number("9" * 19) == 10**18
    assert parse("a(" + "1" * 4400 + ")").layer == Layer(10**18)


def test_layers_resolve_against_the_depth():
    assert [parse(t).layer.resolve(4) for t in ("w(L)", "w(L-3)", "w(2)", "w( L - 1 )")] == [4, 1, 2, 3]


def test_identifiers_are_the_user_names_the_network_takes():
    texts = ("w1", "E_total", "_w", "1w", "w-1", "wé")
    assert [is_identifier(t) for t in texts] == [True, True, False, False, False, False]
    with pytest.raises(SpecError, match="must start with a letter"):
        Network([1, 1], names={"w(L)": "wé"})


@given(st.lists(st.integers(min_value=1, max_value=4), min_size=2, max_size=4), st.data())
def test_every_canonical_name_of_a_network_parses_to_its_node(sizes, data):
    net = Network(sizes)
    refs = [*net.parameter_refs(), NodeRef("C")]
    refs += [NodeRef(kind, layer, j) for kind in "za" for layer in range(1, net.depth + 1) for j in range(sizes[layer])]
    refs += [NodeRef("x", 0, k) for k in range(sizes[0])] + [NodeRef("y", 0, j) for j in range(sizes[-1])]
    ref = data.draw(st.sampled_from(refs))
    text = net.canonical_name(ref)
    assert str(parse(text)) == text
    assert net.resolve(text) == ref


def test_a_tab_inside_the_parentheses_is_a_space_not_a_crash():
    """network.py dropped only " " from the layer: "a(L\\t-\\t1)" raised ValueError (a traceback in the CLI)."""
    assert Network([1, 1, 1]).resolve("a(L\t-\t1)") == NodeRef("a", 1, 0)


def test_up_to_four_indices_a_conv2d_kernel_entry():
    assert parse("w(1)_0_1_2_3") == Name("w", Layer(1), (0, 1, 2, 3))
    assert parse("W(L-1)_0_1") == Name("W", Layer(1, from_output=True), (0, 1))
    assert parse("w(1)_0_1_2_3_4") is None


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_parameter_entry_of_every_kind_round_trips_name_and_entry(data):
    """conv1d w(l)_f_c_m, conv2d w(l)_f_c_m_n, b(l)_f, recurrent W(l)_j_q, U(l)_j_e, b(l)_j, a grid readout's
    w(l)_j_c_p…: the canonical text of an entry parses back to it, and names the stored entry it should."""
    from symback.render.kinds import KindTarget, resolve_target

    from .test_report import grid_networks

    network, _ = grid_networks()[data.draw(st.sampled_from(sorted(grid_networks())))]
    layer = data.draw(st.integers(1, network.depth))
    blocks = network.layers[layer - 1].parameter_names(network.sizes[layer - 1])
    name = data.draw(st.sampled_from(sorted(blocks)))
    block = blocks[name]
    index = tuple(data.draw(st.integers(0, n - 1)) for n in block.shape)
    target = KindTarget(layer, name, index, block)
    text = target.text(network)
    assert str(parse(text)) == text
    assert resolve_target(network, text) == target
    relative = text.replace(f"({network.layer_label(layer)})", f"({layer})")
    assert resolve_target(network, relative) == target
    stored = network.layers[layer - 1].parameter_shapes(network.sizes[layer - 1])[block.stored]
    assert all(0 <= i < n for i, n in zip(target.stored_index, stored, strict=True))
    if name in ("W", "U"):  # the blocks of w = [W | U]: W reads the state, U the input, side by side
        hidden = network.layers[layer - 1].hidden
        assert (target.stored_index[1] < hidden) == (name == "W")
