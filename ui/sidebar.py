"""The sidebar: which model and index answer, the generation preset and its parameters, Clear chat.

A preset copies its values into the widgets; moving any widget switches the preset to ``custom``
(the fixed seed aside: it is not part of the preset table).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamlit as st

from assistant import pipeline, presets
from core.config import Settings

PARAMS = ("temperature", "top_k", "top_p", "repetition_penalty", "copy_boost", "num_beams", "max_new_tokens")
# widget ranges; preset values are clamped into them
RANGES: dict[str, tuple[float, float, float]] = {
    "temperature": (0.05, 2.0, 0.05),
    "top_k": (0, 200, 1),
    "top_p": (0.05, 1.0, 0.01),
    "repetition_penalty": (1.0, 2.0, 0.05),
    "copy_boost": (0.0, 5.0, 0.25),
    "num_beams": (1, 8, 1),
    "max_new_tokens": (16, 1024, 8),
}


# --- which model and index answer ---------------------------------------------------


def _fmt_time(value: Any) -> str:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")
    return str(value or "?")[:16].replace("T", " ")


def sidebar_status(bot: pipeline.Assistant) -> None:
    info = bot.model_info
    idx = bot.index_info
    st.sidebar.markdown("**:material/smart_toy: Model**")
    kind = "fine-tuned" if info.fine_tuned else "base model, not fine-tuned"
    st.sidebar.caption(f"`{info.model_id}` ({kind}) · base `{info.base_model}`")
    if info.perplexity_base is not None and info.perplexity_finetuned is not None:
        st.sidebar.caption(
            f"Held-out perplexity {info.perplexity_base:.1f} → {info.perplexity_finetuned:.1f} "
            "(lower is better)"
        )
    if info.note:
        st.sidebar.caption(info.note)
    st.sidebar.markdown("**:material/menu_book: Index**")
    st.sidebar.caption(
        f"{idx.get('files', '?')} files · {idx.get('pages', '?')} pages · "
        f"{idx.get('chunks', '?')} chunks  \n"
        f"embedder `{idx.get('embedder', '?')}` · built {_fmt_time(idx.get('built_at'))}"
        + (f" in {idx['build_seconds']:.0f} s" if isinstance(idx.get("build_seconds"), (int, float)) else "")
    )
    st.sidebar.divider()


# --- presets and the parameters -----------------------------------------------------


def _clamp(name: str, value: float) -> float:
    lo, hi, _ = RANGES[name]
    return min(max(value, lo), hi)


def _load_preset(name: str) -> None:
    """Copy a preset's values into the widgets' state (custom keeps what is there)."""
    if name not in presets.PRESETS:
        return
    p = presets.PRESETS[name]
    for key in PARAMS:
        st.session_state[key] = _clamp(key, getattr(p, key))
    st.session_state["do_sample"] = p.do_sample
    st.session_state["fixed_seed"] = p.seed is not None
    st.session_state["seed"] = p.seed if p.seed is not None else 0


def _preset_label(name: str) -> str:
    """Beam presets say in the list itself that they are slower and cannot stream."""
    p = presets.PRESETS.get(name)
    return f"{name} (slower, no streaming)" if p is not None and not p.streams else name


def _on_preset_change() -> None:
    _load_preset(st.session_state["preset"])


def _on_param_change() -> None:
    st.session_state["preset"] = presets.CUSTOM


def current_params() -> presets.GenerationParams:
    ss = st.session_state
    return presets.GenerationParams(
        temperature=float(ss["temperature"]),
        top_k=int(ss["top_k"]),
        top_p=float(ss["top_p"]),
        repetition_penalty=float(ss["repetition_penalty"]),
        copy_boost=float(ss["copy_boost"]),
        max_new_tokens=int(ss["max_new_tokens"]),
        num_beams=int(ss["num_beams"]),
        do_sample=bool(ss["do_sample"]),
        seed=int(ss["seed"]) if ss.get("fixed_seed", True) else None,
    )


def _first_run_defaults(settings: Settings) -> None:
    """A new session starts from the configured preset and passage count."""
    ss = st.session_state
    if "preset" in ss:
        return
    default = presets.DEFAULT_PRESET
    ss["preset"] = settings.preset if settings.preset in presets.PRESET_NAMES else default
    _load_preset(ss["preset"] if ss["preset"] in presets.PRESETS else default)
    ss["passages"] = min(max(settings.passages, 1), 20)


def _preset_picker() -> presets.GenerationParams:
    """The preset list and whether its answer streams; returns the widgets' current values."""
    st.sidebar.selectbox(
        "Preset",
        presets.PRESET_NAMES,
        key="preset",
        on_change=_on_preset_change,
        format_func=_preset_label,
        help=" · ".join(f"{name}: {text}" for name, text in presets.PRESET_HELP.items()),
    )
    params = current_params()
    st.sidebar.caption(
        ":material/stream: Tokens stream as they are made."
        if params.streams
        else f":material/hourglass_top: Beam search ({params.num_beams} beams): the answer appears at once."
    )
    return params


def _parameter_widgets(idle: dict[str, str]) -> None:
    """One widget per parameter with its help line, and a note on those the current settings ignore."""
    with st.sidebar.expander("Generation parameters", expanded=True):
        st.toggle("Sample (do_sample)", key="do_sample", on_change=_on_param_change)
        st.caption(presets.PARAM_HELP["do_sample"])
        for name in PARAMS:
            lo, hi, step = RANGES[name]
            if name == "max_new_tokens":
                st.number_input(
                    name, min_value=lo, max_value=hi, step=step, key=name, on_change=_on_param_change
                )
            else:
                st.slider(name, min_value=lo, max_value=hi, step=step, key=name, on_change=_on_param_change)
            st.caption(presets.PARAM_HELP[name])
            if name in idle:
                st.caption(f":material/block: No effect now: {idle[name]}.")
        # not part of the preset table: changing it keeps the preset
        st.toggle("Fixed seed (same question, same answer)", key="fixed_seed")
        st.number_input("seed", min_value=0, step=1, key="seed", disabled=not st.session_state["fixed_seed"])
        st.caption("Off: a new sampled answer each time.")
        if "seed" in idle:
            st.caption(f":material/block: No effect now: {idle['seed']}.")


def sidebar_settings(settings: Settings) -> tuple[str, presets.GenerationParams, int]:
    """(preset name, generation parameters, passages to retrieve) as the sidebar sets them."""
    _first_run_defaults(settings)
    params = _preset_picker()
    _parameter_widgets(params.inactive())
    passages = st.sidebar.slider(
        "Passages", 1, 20, key="passages", help="Retrieved passages offered to the model (cited [1], [2], …)."
    )
    if st.sidebar.button("Clear chat", icon=":material/delete_sweep:", width="stretch"):
        st.session_state["messages"] = []
    return st.session_state["preset"], params, int(passages)
