"""The tuning appendix's tables, figures and sentences, from the committed tuning records.

* The trained models' random searches (``book/tuning/<model>.json``, :mod:`recnotes.tune`):
  :func:`trials_table`, :func:`trials_figure`, :func:`trials_facts`.
* The LLM's LoRA search (``book/tuning/LoRA.json``, ``scripts/select_lora.py``), one setting
  moved at a time around a centre, round after round: :class:`LoRASearch` orders its rows
  (zero-shot prompts, then by round), labels each by what it changes, and gives its table,
  its figure and the facts the page states about it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from . import plots
from .compare import fmt, fmt_p, tidy

__all__ = ["trials_table", "trials_figure", "trials_facts", "LoRASearch"]


def _winner(record: dict) -> dict:
    return next(t for t in record["trials"] if t["trial"] == record["winner"])


def trials_table(records: Mapping[str, dict]) -> pd.DataFrame:
    """One row per model: trials, how many trained within the time budget, the previous
    default's and the best validation NDCG@10, and which trial won."""
    rows = {}
    for model, rec in records.items():
        trials, best = rec["trials"], _winner(rec)
        rows[model] = {"trials": len(trials), "within the time budget": sum(t["eligible"] for t in trials),
                       "previous default": fmt(trials[0]["valid_ndcg10"]), "best": fmt(best["valid_ndcg10"]),
                       "winner": "previous default" if best["trial"] == 0 else f"trial {best['trial']}"}
    return tidy(pd.DataFrame.from_dict(rows, orient="index"))


def trials_facts(records: Mapping[str, dict]) -> dict[str, str]:
    """``changed`` and ``kept``: the models whose default the search changed, and the others."""
    changed = [m for m, rec in records.items() if rec["winner"] != 0]
    return {"changed": ", ".join(changed) if changed else "none",
            "kept": ", ".join(m for m in records if m not in changed) or "none"}


def trials_figure(records: Mapping[str, dict]):
    """Every configuration's validation NDCG@10 per model; the winner a star, hollow points
    over the time budget."""
    fig, ax = plots.new_figure(width=7.5, height=3.6)
    colors = plots.model_colors(list(records))
    for x, (model, rec) in enumerate(records.items()):
        for t in rec["trials"]:
            win = t["trial"] == rec["winner"]
            ax.scatter(x + (0.12 if win else 0), t["valid_ndcg10"], s=70 if win else 30, marker="*" if win else "o",
                       color=colors[model] if t["eligible"] else "white", edgecolor=colors[model], zorder=3)
    ax.set_xticks(range(len(records)), list(records))
    ax.set_ylabel("validation NDCG@10")
    ax.scatter([], [], marker="*", s=70, color="grey", label="winner (the default)")
    ax.scatter([], [], marker="o", s=30, color="white", edgecolor="grey", label="over the time budget")
    ax.legend(loc="lower right")
    return fig


def zero_shot_label(entry: dict) -> str:
    """A zero-shot row of a search table: its prompt and how many of the user's films it reads
    (two searches of other windows read other histories, so their zero-shot rows differ)."""
    history = f", {entry['history']} films" if "history" in entry else ""
    return f"zero-shot, {entry['template']} prompt{history}"


class LoRASearch:
    """The LoRA search record (``results``: its rows by key; ``best``: the chosen row and score;
    ``centre``: the first round's centre), ordered and labelled for the page."""

    FACTORS = ("lr", "layers", "rank", "window", "objective")
    ORDER = ("window", "rank", "layers", "lr", "objective")  # how a label lists what changed
    LOSS = {"lm": "LM loss", "rank": "rank loss", "lm+rank": "LM + rank loss"}
    NAMES = {"lr": "learning rate", "layers": "number of blocks", "rank": "rank", "window": "window"}

    def __init__(self, record: dict) -> None:
        self.record = record
        self.entries, self.best, self.centre = record["results"], record["best"], record["centre"]
        self.chosen = self.entries[self.best["setting"]]
        self.trained = {k: v for k, v in self.entries.items() if not v.get("zero_shot")}
        self.order = sorted(self.entries, key=self._sort_key)
        self.labels = {k: self.place(self.entries[k])[1] for k in self.order}

    def diff(self, entry: dict, base: dict) -> list[str]:
        """The settings in which a row differs from ``base``."""
        return [f for f in self.FACTORS if entry[f] != base[f]]

    def words(self, entry: dict, fields) -> str:
        w = {"lr": f"learning rate {entry['lr']:g}", "layers": f"top {entry['layers']} blocks",
             "rank": f"rank {entry['rank']}", "window": f"window {entry['window']}",
             "objective": f"{self.LOSS[entry['objective']]}, {entry['targets']:,} targets"}
        return ", ".join(w[f] for f in fields)

    def place(self, entry: dict) -> tuple[int, str]:
        """(group, label): group 0 the zero-shot prompts, else the number of settings changed
        from the centre (each round of the search changes one more)."""
        if entry.get("zero_shot"):
            return 0, zero_shot_label(entry)
        changed = [f for f in self.ORDER if f in self.diff(entry, self.centre)]
        label = self.words(entry, changed) if changed else "centre"
        return max(1, len(changed)), label + ("" if entry["within_budget"] else " (over budget)")

    def _sort_key(self, key: str):
        """Zero-shot first, then by round; within a round by which settings changed, then their values."""
        entry = self.entries[key]
        if entry.get("zero_shot"):
            return (0, (), ())
        changed = [f for f in self.ORDER if f in self.diff(entry, self.centre)]
        return (self.place(entry)[0], tuple(self.ORDER.index(f) for f in changed),
                tuple(entry[f] if f != "objective" else entry["targets"] for f in changed))

    @property
    def rounds(self) -> int:
        return max(self.place(e)[0] for e in self.entries.values())

    def table(self) -> pd.DataFrame:
        """A row per setting: NDCG@10 with either score and its p against the best row, and the
        training seconds (the intervals are in the figure)."""
        rows = {}
        for key in self.order:
            entry, row = self.entries[key], {}
            for reduce in ("mean", "sum"):
                e = entry[reduce]
                row[f"NDCG@10, {reduce} score"] = fmt(e["valid_ndcg10"])
                row[f"p vs best, {reduce}"] = fmt_p(e["p_vs_best"]) if "p_vs_best" in e else "best"
            row["training (s)"] = fmt(entry["train_seconds"]) if "train_seconds" in entry else "–"
            rows[self.labels[key]] = row
        return tidy(pd.DataFrame(rows).T)

    def figure(self):
        """Every row's NDCG@10 with either score and its 95% interval, grouped by round; the
        chosen row a star on a dotted line, rows over the budget hollow."""
        order, entries, best = self.order, self.entries, self.best
        fig, ax = plots.new_figure(width=8, height=0.3 * len(order) + 1.3)
        for y, key in enumerate(order):
            entry = entries[key]
            for reduce, dy, marker, color in (("mean", -0.15, "o", plots.PALETTE[0]),
                                              ("sum", 0.15, "s", plots.PALETTE[1])):
                e = entry[reduce]
                is_best = (key, reduce) == (best["setting"], best["reduce"])
                ax.errorbar(e["valid_ndcg10"], y + dy,
                            xerr=[[e["valid_ndcg10"] - e["ci_low"]], [e["ci_high"] - e["valid_ndcg10"]]],
                            fmt="*" if is_best else marker, ms=12 if is_best else 5, color=color,
                            mfc=color if entry["within_budget"] else "white", lw=1, capsize=2,
                            label=f"{reduce} log-probability" if y == 0 else None)
        rounds = [self.place(entries[k])[0] for k in order]
        for y in range(1, len(order)):
            if rounds[y] != rounds[y - 1]:
                ax.axhline(y - 0.5, color="0.6", lw=0.8)
        ax.set_yticks(range(len(order)), [self.labels[k] for k in order])
        ax.invert_yaxis()
        ax.axvline(self.chosen[best["reduce"]]["valid_ndcg10"], ls=":", c="grey", lw=1)
        ax.set_xlabel(f"validation NDCG@10 ({self.record['users']} users, 20 candidates)")
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, title="score", frameon=False)
        return fig

    @classmethod
    def read(cls, path: str | Path) -> "LoRASearch | None":
        """The search of the record at ``path``; None where there is none."""
        path = Path(path)
        return cls(json.loads(path.read_text())) if path.is_file() else None

    def names(self, setting: Mapping) -> bool:
        """Whether ``setting`` (lr, layers, rank, window, objective) is the chosen row's."""
        return all(self.chosen.get(f) == setting[f] for f in self.FACTORS)

    def objective_words(self, verdict: bool = False) -> str:
        """The losses that rank (against sampled titles) beside the centre's LM loss, each with
        its validation NDCG@10, targets and seconds; with ``verdict``, whether the LM loss stays."""
        ranked = {k: v for k, v in self.trained.items() if v["objective"] != "lm"}
        if not ranked:
            return "none were tried"
        ref = next((v for v in self.trained.values() if not self.diff(v, self.centre)), None)
        words = "; ".join(f"{self.LOSS[v['objective']]}, {v['targets']:,} targets in {v['train_seconds']:.0f} s: "
                          f"{fmt(v['mean']['valid_ndcg10'])}" for v in ranked.values())
        if ref is None:
            return words
        words += (f", against {fmt(ref['mean']['valid_ndcg10'])} for the centre's LM loss "
                  f"({ref['targets']:,} targets in {ref['train_seconds']:.0f} s)")
        best = max(v["mean"]["valid_ndcg10"] for v in ranked.values())
        if verdict:
            words += (", so the LM loss stays" if best <= ref["mean"]["valid_ndcg10"] else
                      ", so a rank loss did better at this length")
        return words

    def tried(self, f: str) -> list:
        """The values tried for a setting, the others as chosen."""
        chosen = self.chosen
        return sorted({v[f] for v in self.trained.values()
                       if all(v[g] == chosen[g] for g in self.FACTORS if g != f)})

    def facts(self, used: tuple) -> dict[str, Any]:
        """What the page states about the search, by glue name.  ``used``: the setting chapter 6
        runs, ``((lr, layers, rank, window, objective), reduce)``."""
        lora, entries, best, chosen, centre = self.record, self.entries, self.best, self.chosen, self.centre
        out: dict[str, Any] = {"search_targets": lora["targets"], "lora_users": lora["users"],
                               "lora_rounds": self.rounds}
        for f in ("lr", "layers", "rank", "window"):
            out[f"lora_centre_{f}"] = f"{centre[f]:g}" if isinstance(centre[f], float) else centre[f]
        out["lora_best"] = (f"learning rate {chosen['lr']:g} on the top {chosen['layers']} blocks, rank "
                            f"{chosen['rank']}, windows of {chosen['window']} films, the "
                            f"{self.LOSS[chosen['objective']]}, scored by the {best['reduce']} log-probability")
        ranges = {f: self.tried(f) for f in self.NAMES}
        at_edge = [self.NAMES[f] for f, t in ranges.items() if not (len(t) >= 3 and t[0] < chosen[f] < t[-1])]
        out["lora_edge"] = ("each chosen value lies inside the range tried for it with the other settings "
                            "as chosen" if not at_edge else
                            f"the chosen {' and '.join(at_edge)} {'lies' if len(at_edge) == 1 else 'lie'} "
                            f"at the edge of the range tried with the other settings as chosen")
        out["lora_ranges"] = "; ".join(f"{self.NAMES[f]} {', '.join(f'{x:g}' for x in t)}" for f, t in ranges.items())
        out["lora_dtype"] = lora["dtype"]
        over = {k: v for k, v in entries.items() if not v["within_budget"]}
        over_words = []
        for k, v in over.items():
            e = v[best["reduce"]]
            significance = "significant" if e["p_vs_best"] < 0.05 else "not significant"
            over_words.append(f"{self.labels[k].removesuffix(' (over budget)')} reached {fmt(e['valid_ndcg10'])} "
                              f"({e['diff_vs_best']:+.3f} against the chosen row, {significance} at 5%, p "
                              f"{fmt_p(e['p_vs_best'])}), reading {v['tokens_per_user']:,.0f} tokens per "
                              f"validation user against {chosen['tokens_per_user']:,.0f} for the chosen row")
        over_text = "; ".join(over_words)
        out["lora_budget"] = "" if not over else \
            f"The budget is the book's: {lora.get('budget', {})['reason']} {over_text[:1].upper()}{over_text[1:]}."
        out["lora_objectives"] = self.objective_words()
        out["lora_negatives"] = lora["negatives"]
        zs = {v["template"]: v for v in entries.values() if v.get("zero_shot")}
        out["lora_zs"] = " and ".join(f"the {t} prompt {fmt(v['mean']['valid_ndcg10'])}" for t, v in zs.items())
        zs_best = max(zs, key=lambda t: zs[t]["mean"]["valid_ndcg10"]) if zs else None
        out["lora_format"] = ("which is why the fine-tuning writes its windows as a plain list" if zs_best == "list"
                              else "the fine-tuning writes its windows as a plain list all the same, the format "
                                   "whose every line is a title")
        out["lora_used"] = ("Chapter 6 uses this setting"
                            if used == (tuple(chosen[f] for f in self.FACTORS), best["reduce"])
                            else "Chapter 6 does not use the best row")
        return out
