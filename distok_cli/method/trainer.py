"""DisTok training: one task per step (matching, fusion or consistency), estimation every few steps, L_reg always.

Per step, on n samples at once (batched: on a GPU a batch of 64 costs what a batch of 8 does):

* **matching** (distok's objective, ``train.objective: distok``; chosen with probability ``p_match``): n
  user-like distributions p (1–4 classes, Dirichlet(1) weights), each in a style S drawn from
  ``train.styles``; token = model(Σ p_i t_i); loss KL(p ‖ q) with q = softmax_c(cos(E("S <token>"),
  E("S {c}")) / T), the text-side estimator (differentiable; on Kandinsky/SD the CLIP text side, never a
  render). T is ``match_temperature``, or calibrated like ``distok eval``'s: in each style (or, with
  ``match_calibration: first``, in the first), the class tokens give their own class ``eval.calibrate_to``;
* **fusion** (I_mix = 1): pairs (c1, c2) from the pool (c2 a discovered concept with probability
  ``p_recursive`` once there are some), z = E_dis(t1 + t2), t_crt = D_tok(z), loss L_mix between
  E(q_a with t_crt) and the cached E(q_r), E(q_s);
* **consistency** (I_cst = 1, chosen with probability ``p_consistency`` once the pool has discovered
  concepts): z = E_dis(Σ_i p_nvl(i) t_i), loss L_cst between E(q_a with t_crt) and the cached E(q_a with t_nvl);
* **refined consistency** (``train.refined_every`` > 0; chosen with probability ``p_refined`` once the
  refined pool has concepts): every ``refined_every`` steps, ``refined_n`` user-like distributions p are
  encoded and refined (``refined_steps`` Adam steps on KL(p ‖ q_S), one random training style per token and
  step); each joins ``RUN/refined/`` as (token, p), with its estimate measured by the training estimator,
  and the step is L_cst from p's mix to the refined token, as for a discovered concept;
* **estimation** (every ``estimate_every`` steps, no gradient): z ~ N(0, I) → tokens → estimator; tokens
  whose largest class probability is below τ join the pool with their distribution and renders;
* ``L = mean_n(I_match L_match + α I_mix L_mix + β I_cst L_cst) + γ L_reg(z)`` on the step's latents, plus
  for a residual model (``train.residual``) ``L_rec = ‖skip(z) − mix‖² / ‖mix‖²``, which teaches the
  latent to hold its mix (what ``sample`` decodes). With ``lr_schedule: cosine`` the learning rate follows
  a cosine from ``lr`` to 0 over the run's target steps (a function of the step: resume stays exact).

Only q_a passes through the text encoder with gradients; every fixed prompt embedding is computed once.
All sampling uses one CPU ``torch.Generator`` whose state, with the optimizer's, is saved in
``state.safetensors``, so ``--resume`` continues exactly (tested bit-for-bit on CPU).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distok_cli import interrupts
from distok_cli.backends.textside import TextSide
from distok_cli.errors import BadInput
from distok_cli.files.recipes import Recipe
from distok_cli.method import losses
from distok_cli.method.matching import REFINE_LR, StyleScorer
from distok_cli.method.model import DisTok
from distok_cli.method.pool import Pool, admit
from distok_cli.method.runfolder import RunFolder
from distok_cli.progress import Progress


@dataclass
class StepResult:
    step: int
    task: str
    loss: float
    l_mix: float | None
    l_cst: float | None
    l_reg: float
    pool: int
    admitted: int
    l_match: float | None = None
    l_rec: float | None = None


class Trainer:
    def __init__(self, recipe: Recipe, run: Path, text: TextSide, estimator: Any, device: str = "cpu") -> None:
        self.recipe, self.run, self.text, self.estimator, self.device = recipe, run, text, estimator, device
        t = recipe.train
        torch.manual_seed(recipe.seed)
        self.gen = torch.Generator("cpu").manual_seed(recipe.seed)
        self.mark()
        self.classes = list(recipe.classes)
        self.class_emb = text.class_embeddings(self.classes).to(device)  # [K, d]
        layout = text.space.layout
        if t.heads == "parts" and not layout:
            raise BadInput(
                f"train.heads parts needs a token space with parts; {text.space.encoder}'s is one vector (use joint)"
            )
        parts = layout if t.heads == "parts" else ()
        self.model = DisTok(
            text.dim,
            t.hidden,
            t.latent_dim,
            residual=t.residual,
            parts=parts,
            reweight_classes=len(self.classes) if t.reweight else 0,
            reweight_arity=t.reweight_arity,
        ).to(device)
        reweight = [q for n, q in self.model.named_parameters() if n.startswith("reweight.")]
        groups: list[dict[str, Any]] = [
            {"params": [q for n, q in self.model.named_parameters() if not n.startswith("reweight.")]}
        ]
        if reweight:  # the weighting's few parameters may learn faster than the MLPs (train.reweight_lr)
            groups.append({"params": reweight, "lr": t.reweight_lr or t.lr, "weight_decay": 0.0})
        self.opt = torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay)
        self.folder = RunFolder(run)  # the run's files; this class is the training
        self.pool = Pool(run / "pool", t.pool_max)
        self.refined = Pool(run / "refined", t.refined_max)  # stays empty unless train.refined_every
        self.step = 0
        self.on_commit: Any = None  # called with each step's result inside its commit (train() logs there)
        self.target = recipe.train.steps  # the step this run trains to (stored, so a bare --resume knows it)
        with torch.no_grad():
            self.e_s = text.encode([t.q_s])[0]
        self._e_r: dict[tuple[str, str], torch.Tensor] = {}  # (class, pool concept) → E(q_r)
        self._e_nvl: dict[str, torch.Tensor] = {}  # pool concept name ("r:" + name for refined) → E(q_a with it)
        self.q_a = TextSide.fill(t.q_a)
        text.check_fits([self.q_a])
        self.E_r: torch.Tensor | None = None  # [K, K, D]: E(q_r) of every known pair (diagonal unused)
        fusion_runs = t.fusion and not (t.objective == "distok" and t.p_match >= 1)
        if fusion_runs:  # every known pair's q_r, once, in batches (K·(K−1) prompts)
            K = len(self.classes)
            pairs = [(a, b) for a in range(K) for b in range(K) if a != b]
            rows = []
            for i in range(0, len(pairs), 256):
                prompts = [t.q_r.format(c1=self.classes[a], c2=self.classes[b]) for a, b in pairs[i : i + 256]]
                with torch.no_grad():
                    rows.append(self.text.encode(prompts))
            flat = torch.cat(rows)
            self.E_r = torch.zeros(K, K, flat.shape[-1], dtype=flat.dtype, device=flat.device)
            idx = torch.tensor(pairs, device=flat.device)
            self.E_r[idx[:, 0], idx[:, 1]] = flat
        self.match_T: float | list[float] | None = None
        self.scorer: StyleScorer | None = None
        if t.objective == "distok":  # every style's class prompts, once; the matching temperature(s)
            self.scorer = StyleScorer(text, self.classes, list(t.styles), t.match_temperature or 1.0)
            if not t.match_temperature:
                calibrated = [self.calibrated_temperature(s) for s in range(len(t.styles))]
                self.scorer.temperature = calibrated if t.match_calibration == "per_style" else calibrated[0]
            self.match_T = self.scorer.temperature

    def calibrated_temperature(self, style: int = 0) -> float:
        """``distok eval``'s rule in one training style: the largest T at which the class tokens give their own
        class a mean probability of ``eval.calibrate_to``."""
        from distok_cli.method.evaluation import calibrate_temperature

        assert self.scorer is not None
        K = len(self.classes)
        with torch.no_grad():
            cos = torch.cat(
                [
                    self.scorer.cosines(self.class_emb[i : i + 256], [style] * len(self.class_emb[i : i + 256]))
                    for i in range(0, K, 256)
                ]
            )
        return calibrate_temperature(cos.double().cpu().numpy()[:, None, :], self.recipe.eval.calibrate_to)

    # ------------------------------------------------------------------------------------- state
    def config(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "token_space": self.text.space.to_json(),
            "recipe": self.recipe.name,
            "step": self.step,
            "fusion_input": self.recipe.train.fusion_input,
            "objective": self.recipe.train.objective,
            **({"styles": list(self.recipe.train.styles), "match_temperature": self.match_T} if self.match_T else {}),
        }

    def checkpoint(self) -> Any:
        return self.model.to_checkpoint(self.class_emb, self.config())

    def save(self) -> None:
        """Model, optimizer and RNG state (as marked at the end of step ``self.step``), each written
        atomically; stop signals wait for the end of the write."""
        with interrupts.deferred():
            self._save()

    def _save(self) -> None:
        tensors: dict[str, torch.Tensor] = {
            f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()
        }
        opt = self.opt.state_dict()
        for pid, st in opt["state"].items():
            for key, val in st.items():
                tensors[f"opt.{pid}.{key}"] = torch.as_tensor(val).detach().cpu().contiguous()
        tensors["rng.generator"], tensors["rng.torch"] = self._marked
        meta = {
            "step": str(self.step),
            "target": str(self.target),
            "param_groups": json.dumps(opt["param_groups"], sort_keys=True),
        }
        self.folder.write_checkpoint(self.checkpoint(), {k: v.numpy() for k, v in tensors.items()}, meta)

    def load_state(self) -> None:
        """Continue from the run folder's checkpoint: model, optimizer, RNG, step and target."""
        saved = self.folder.read_state()
        if saved is None:  # killed before the step-0 checkpoint: nothing was trained, start at step 0
            self.rewind()
            return
        tensors, meta = saved
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, key = k.split(".", 2)
                state.setdefault(int(pid), {})[key] = v
        self.opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
        self.gen.set_state(tensors["rng.generator"])
        torch.set_rng_state(tensors["rng.torch"])
        self.mark()
        self.step = int(meta["step"])
        self.target = int(meta.get("target", self.recipe.train.steps))
        self.rewind()

    # -------------------------------------------------------------------------------- embeddings
    def _pool_pair_targets(self, pairs: list[tuple[str, Any]]) -> torch.Tensor:
        """E(q_r) for (known class, discovered concept) pairs; the concept enters q_r as its own token. Cached."""
        t = self.recipe.train
        for a, b in pairs:
            if (a, b.name) not in self._e_r:
                prompt = TextSide.fill(t.q_r.format(c1=a, c2="<>"))
                with torch.no_grad():
                    vec = torch.as_tensor(b.vector, device=self.class_emb.device)[None]
                    self._e_r[(a, b.name)] = self.text.encode([prompt], vec)[0]
        return torch.stack([self._e_r[(a, b.name)] for a, b in pairs])

    def _nvl_targets(self, entries: list[Any], prefix: str = "") -> torch.Tensor:
        for e in entries:
            if prefix + e.name not in self._e_nvl:
                with torch.no_grad():
                    vec = torch.as_tensor(e.vector, device=self.class_emb.device)[None]
                    self._e_nvl[prefix + e.name] = self.text.encode([self.q_a], vec)[0]
        return torch.stack([self._e_nvl[prefix + e.name] for e in entries])

    def _randint(self, high: int, n: int) -> list[int]:
        return torch.randint(high, (n,), generator=self.gen).tolist()

    # ------------------------------------------------------------------------------------- tasks
    def estimation(self, step: int) -> int:
        """Decode random latents, estimate their distributions, admit the spread-out ones (as concepts of
        ``step``). Returns #admitted."""
        t = self.recipe.train
        if self.pool.full:
            return 0
        z = torch.randn(t.estimate_n, t.latent_dim, generator=self.gen).to(self.class_emb.device)
        if t.latent_sampling == "stats":  # in the latents' own scale, where D_tok was trained
            z = self.model.standardised(z)
        with torch.no_grad():
            tokens = self.model.decode(z).float()
        seeds = [self.recipe.seed * 1_000_003 + step * 1000 + i for i in range(t.estimate_n)]
        probs, images = self.estimator(tokens, seeds)
        admitted = 0
        per = max(1, len(images) // t.estimate_n) if images else 0
        for i in range(t.estimate_n):
            dist = {c: float(p) for c, p in zip(self.classes, probs[i].double() / probs[i].double().sum())}
            if self.pool.full or not admit(dist, t.tau, t.tau_min):
                continue
            imgs = images[i * per : (i + 1) * per] if (images and t.keep_images) else None
            self.pool.add(
                tokens[i].cpu().numpy(),
                dist,
                step,
                [float(x) for x in z[i].cpu()],
                self.text.space,
                {**self.estimator.describe(), "seeds": [seeds[i]]},
                imgs,
            )
            admitted += 1
        return admitted

    def refine_round(self, step: int) -> int:
        """Refined concepts of ``step``: ``refined_n`` user-like distributions p, encoded, refined in random
        training styles, estimated by the training estimator; each joins the refined pool as (token, p) with
        that estimate beside it. Returns #added."""
        t = self.recipe.train
        if self.refined.full:
            return 0
        assert self.scorer is not None
        p, _ = self.match_batch(t.refined_n)
        with torch.no_grad():
            start = self.model(self.model.mix(p, self.class_emb))[1].float()
        v = torch.nn.Parameter(start.clone())
        opt = torch.optim.Adam([v], lr=REFINE_LR)
        for _ in range(t.refined_steps):
            loss = self.scorer.kl(p, v, self._randint(len(t.styles), t.refined_n)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        tokens = v.detach()
        seeds = [self.recipe.seed * 1_000_003 + step * 1000 + 500 + i for i in range(t.refined_n)]
        probs, _ = self.estimator(tokens, seeds)
        added = 0
        for i in range(t.refined_n):
            if self.refined.full:
                break
            measured = {c: float(q) for c, q in zip(self.classes, probs[i].double() / probs[i].double().sum())}
            target = {c: float(x) for c, x in zip(self.classes, p[i].double().cpu()) if x > 0}
            self.refined.add(
                tokens[i].cpu().numpy(),
                target,
                step,
                [],
                self.text.space,
                {**self.estimator.describe(), "seeds": [seeds[i]], "refined_steps": t.refined_steps},
                measured=measured,
            )
            added += 1
        return added

    def choose_task(self) -> str:
        t = self.recipe.train
        if t.refined_every and len(self.refined) and float(torch.rand((), generator=self.gen)) < t.p_refined:
            return "refined"
        if t.objective == "distok" and float(torch.rand((), generator=self.gen)) < t.p_match:
            return "match"
        r = float(torch.rand((), generator=self.gen))
        has_pool = len(self.pool) > 0
        if t.consistency and has_pool and (r < t.p_consistency or not t.fusion):
            return "cst"
        if t.fusion:
            return "mix"
        return "none"

    def fusion_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs t1 + t2 and targets E(q_r) for n pairs, gathered in one go (no per-sample launches)."""
        t, K, dev = self.recipe.train, len(self.classes), self.class_emb.device
        a = torch.tensor(self._randint(K, t.n), device=dev)
        b = torch.tensor(self._randint(K - 1, t.n), device=dev)
        rec = torch.rand(t.n, generator=self.gen).tolist()
        pick = self._randint(max(len(self.pool), 1), t.n)
        j = b + (b >= a).long()  # a class other than a
        second, targets = self.class_emb[j], self.E_r[a, j]
        recursive = [i for i in range(t.n) if len(self.pool) and rec[i] < t.p_recursive]
        if recursive:  # c2 is a discovered concept: its token is t2 and it enters q_r as itself
            entries = [self.pool.entries[pick[i]] for i in recursive]
            rows = torch.tensor(recursive, device=dev)
            vecs = torch.stack([torch.as_tensor(e.vector, device=dev) for e in entries]).to(second.dtype)
            second = second.index_copy(0, rows, vecs)
            pool_targets = self._pool_pair_targets([(self.classes[int(a[i])], e) for i, e in zip(recursive, entries)])
            targets = targets.index_copy(0, rows, pool_targets.to(targets.dtype))
        scale = 0.5 if t.fusion_input == "mean" else 1.0
        return (self.class_emb[a] + second) * scale, targets

    def match_batch(self, n: int | None = None) -> tuple[torch.Tensor, list[int]]:
        """n (default ``train.n``) user-like distributions [n, K] (1 to 4 classes, uniform, or as
        ``train.match_arity`` weighs them; Dirichlet(1) weights, drawn as normalised Exp(1) variables) and a
        style index for each."""
        t, K = self.recipe.train, len(self.classes)
        n = n or t.n
        if t.match_arity:  # arity k with probability ∝ match_arity[k − 1] (k ≤ K)
            odds = torch.tensor(t.match_arity[:K], dtype=torch.float64)
            arity = (torch.multinomial(odds, n, replacement=True, generator=self.gen) + 1).tolist()
        else:
            arity = torch.randint(1, min(4, K) + 1, (n,), generator=self.gen).tolist()
        top = max(arity)
        order = torch.rand(n, K, generator=self.gen).argsort(1)
        weights = -torch.rand(n, min(max(4, top), K), generator=self.gen).clamp_min(1e-12).log()
        styles = self._randint(len(t.styles), n)
        p = torch.zeros(n, K)
        for i, k in enumerate(arity):
            p[i, order[i, :k]] = weights[i, :k] / weights[i, :k].sum()
        return p.to(self.class_emb.device), styles

    def track_latents(self, z: torch.Tensor) -> None:
        """Running (EMA, momentum ``latent_momentum``) mean and std of E_dis's outputs per dimension."""
        m = self.recipe.train.latent_momentum
        var = self.model.latent_std.square()
        self.model.latent_mean.mul_(m).add_(z.mean(0), alpha=1 - m)
        self.model.latent_std.copy_((var * m + z.var(0, unbiased=False) * (1 - m)).sqrt())

    def train_step(self) -> StepResult:
        t = self.recipe.train
        # The counter moves only once the step's update is done: an interrupted step never counts.
        step = self.step + 1
        admitted = self.estimation(step) if step % t.estimate_every == 0 else 0
        if t.refined_every and step % t.refined_every == 0:
            self.refine_round(step)
        task = self.choose_task()
        if task == "none":
            return self._commit(StepResult(step, task, 0.0, None, None, 0.0, len(self.pool), admitted))
        if task == "match":
            p_match, styles = self.match_batch()
            inputs = self.model.mix(p_match, self.class_emb)
        elif task == "mix":
            inputs, e_r = self.fusion_batch()
        elif task == "refined":  # the distribution it was refined to, mixed as the model mixes a user's
            entries = [self.refined.entries[i] for i in self._randint(len(self.refined), t.n)]
            p = torch.tensor([[e.distribution.get(c, 0.0) for c in self.classes] for e in entries], dtype=torch.float32)
            inputs = self.model.mix(p.to(self.class_emb.device), self.class_emb)
            e_nvl = self._nvl_targets(entries, "r:")
        else:
            entries = [self.pool.entries[i] for i in self._randint(len(self.pool), t.n)]
            p = torch.tensor([[e.distribution.get(c, 0.0) for c in self.classes] for e in entries], dtype=torch.float32)
            inputs = p.to(self.class_emb.device) @ self.class_emb
            e_nvl = self._nvl_targets(entries)
        z, t_crt = self.model(inputs)
        lmix = lcst = lmatch = lrec = None
        if task == "match":
            assert self.scorer is not None
            lk = self.scorer.kl(p_match, t_crt, styles)
            main = lk.mean()
            lmatch = float(lk.mean().detach())
        elif task == "mix":
            e_a = self.text.encode([self.q_a] * t.n, t_crt)
            lm = losses.l_mix(e_a, e_r, self.e_s.expand_as(e_a), t.eps1, t.eps2)
            main = t.alpha * lm.mean()
            lmix = float(lm.mean().detach())
        else:
            e_a = self.text.encode([self.q_a] * t.n, t_crt)
            lc = losses.l_cst(e_a, e_nvl)
            main = t.beta * lc.mean()
            lcst = float(lc.mean().detach())
        lreg = losses.l_reg(z, t.reg_axis, t.reg_anchor)
        loss = main + t.gamma * lreg
        if t.residual:
            rec = losses.l_rec(self.model.reconstruct(z), inputs)
            loss = loss + rec
            lrec = float(rec.detach())
        if t.lr_schedule == "cosine":  # a function of the step alone, so --resume stays exact
            for group in self.opt.param_groups:
                base = t.lr if group is self.opt.param_groups[0] else (t.reweight_lr or t.lr)
                group["lr"] = base * 0.5 * (1 + math.cos(math.pi * min(self.step / max(self.target, 1), 1.0)))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip > 0:  # L_reg's 1/σ² spikes when a batch repeats one input (σ → 0)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        result = StepResult(
            step, task, float(loss.detach()), lmix, lcst, float(lreg.detach()), len(self.pool), admitted, lmatch, lrec
        )
        return self._commit(result, z.detach())

    def _commit(self, r: StepResult, z: torch.Tensor | None = None) -> StepResult:
        """The only place a step changes what a checkpoint holds: the latent statistics, the update, the
        counter, the RNG mark and the log row, all or nothing (stop signals wait for the end of the block).
        Everything before it in a step can be undone by :meth:`undo_step`."""
        with interrupts.deferred():
            if z is not None:
                self.track_latents(z)
                self.opt.step()
            self.step = r.step
            self.mark()
            if self.on_commit is not None:
                self.on_commit(r)
        return r

    def mark(self) -> None:
        """Remember the RNG state as it is at the end of step ``self.step`` (what a checkpoint saves)."""
        self._marked = self.gen.get_state(), torch.get_rng_state()

    def undo_step(self) -> None:
        """Undo what a step that did not reach its commit left behind: its RNG draws and any pool concepts
        (entries and files) it admitted."""
        self.gen.set_state(self._marked[0])
        torch.set_rng_state(self._marked[1])
        self.pool.truncate(self.step)
        self.refined.truncate(self.step)

    # -------------------------------------------------------------------------------------- loop
    def train(self, total: int, progress: Progress | None = None) -> list[StepResult]:
        """Train up to step ``total``; ``progress(1, info)`` per step.

        Checkpoints at step 0 (so no run folder is ever dead), every ``checkpoint_every`` steps, at the
        end, and when a stop signal or Ctrl-C arrives. A step changes the checkpointed state only in its
        commit, which signals cannot split (:mod:`distok_cli.interrupts`), and a checkpoint write is whole
        too; an interrupted step is undone (its RNG draws and any pool concepts it admitted), so the
        checkpoint saved on the way out is exactly step ``self.step``'s and ``--resume`` continues as if
        nothing had happened.
        """
        t = self.recipe.train
        self.target = total
        results: list[StepResult] = []
        self.mark()
        with self.folder.log(t.log_every, total) as write:

            def write_row(r: StepResult) -> None:
                results.append(r)
                write(dict(vars(r)))

            self.on_commit = write_row
            try:
                if not self.folder.has_state():
                    self.save()
                while self.step < total:
                    interrupts.check()  # a stop request whose exception library code swallowed
                    r = self.train_step()
                    if progress is not None:
                        progress(1, f"{r.task} loss {r.loss:.4f} pool {r.pool}")
                    if r.step % t.checkpoint_every == 0 or r.step == total:
                        self.save()
                interrupts.check()
            except BaseException as exc:
                if interrupts.signal_of(exc) is None:
                    raise
                # A stop: the model and optimizer are as after self.step (the commit is whole); undo the rest
                # of the step in flight and save step self.step's checkpoint (a second signal waits for it).
                with interrupts.deferred():
                    self.undo_step()
                    self.save()
                raise
            finally:
                self.on_commit = None
        return results

    def rewind(self) -> None:
        """Forget what happened after the checkpoint's step (:meth:`RunFolder.rewind`)."""
        self.folder.rewind(self.step, [self.pool, self.refined])

    def plot(self) -> None:
        self.folder.plot(self.recipe.name)


def build(recipe: Recipe, run: Path, device: str = "auto", dtype: str = "auto") -> Trainer:
    """Load what the recipe's estimator needs (renderer + BLIP, the prior, or only the text side)."""
    from distok_cli.backends.loading import pick_device
    from distok_cli.backends.token_estimators import make_token_estimator

    dev = pick_device(device)
    est = make_token_estimator(recipe, dev, dtype)
    return Trainer(recipe, run, est.text, est, dev)
