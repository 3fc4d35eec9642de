"""The equations beside each view, as the papers write them (Kingma & Welling 2014; Goodfellow et al. 2014;
Ho et al. 2020; Song et al. 2021), each symbol tied to what the tab shows. Text only: nothing is computed here."""
from __future__ import annotations

# Gradio's Markdown renders $$...$$ by default; inline $...$ needs its own delimiter.
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]

SIDE_BY_SIDE = r"""
**What each grid is.** VAE: the decoder's location (its most likely image) $\mu_\theta(z)$ for
$z \sim \mathcal{N}(0, I)$.
GAN: the generator's image $G(z)$ for $z \sim \mathcal{N}(0, I)$. Diffusion: $x_0$ reached from
$x_T \sim \mathcal{N}(0, I)$ by the chosen sampler, one network call $\epsilon_\theta(x_t, t)$ per step (Heun:
two). "Network evaluations per sample" counts those calls: 1 for the VAE and the GAN, the step count for
diffusion, which is why it is slower.

**The two hybrids.** Latent diffusion (VAE + diffusion): a diffusion model over the VAE's latent space samples
$z$ where the encoder actually puts digits (a learned prior instead of $\mathcal{N}(0, I)$), and the VAE's
decoder draws it. Diffusion GAN (GAN + diffusion, Xiao et al. 2022): four large denoising steps
$x_{999} \to x_{749} \to x_{499} \to x_{249} \to x_0$; at each, a generator predicts
$\hat x_0 = G_\theta(x_t, z, t)$ with $z \sim \mathcal{N}(0, I)$ and the next $x$ is drawn from the forward
posterior $q(x_{t'} \mid x_t, \hat x_0)$. A Gaussian reverse step is accurate only for small steps; with large ones
the true $q(x_{t'} \mid x_t)$ has many modes, and a discriminator on $(x_{t'}, x_t, t)$ teaches $G$ to draw from it.
"""

VAE = r"""
**Objective (the ELBO).** The encoder $q_\phi(z \mid x) = \mathcal{N}(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))$
and the decoder $p_\theta(x \mid z)$ are trained to maximise a lower bound on the log-likelihood:

$$\log p_\theta(x) \;\ge\; \mathbb{E}_{q_\phi(z \mid x)}\big[\log p_\theta(x \mid z)\big] \;-\; D_{\mathrm{KL}}\big(q_\phi(z \mid x)\,\|\,p(z)\big), \qquad p(z) = \mathcal{N}(0, I).$$

The first term is the reconstruction (bottom row of "A, B and their reconstructions"); the KL term pulls every
encoding towards the prior, which is what makes the latent space smooth enough to walk through.

**Reparameterisation.** $z = \mu_\phi(x) + \sigma_\phi(x) \odot \varepsilon$, $\varepsilon \sim \mathcal{N}(0, I)$:
the sample is a differentiable function of the encoder's outputs, so the ELBO's gradient reaches $\phi$.

**The path on screen.** $z_A = \mu_\phi(x_A)$, $z_B = \mu_\phi(x_B)$; the strip decodes $z(u)$ for $u$ from 0 to 1.
Lerp: $z(u) = (1 - u)\, z_A + u\, z_B$. Slerp, with $\cos\Omega = \frac{z_A \cdot z_B}{\lVert z_A\rVert\,\lVert z_B\rVert}$:

$$z(u) = \frac{\sin\big((1 - u)\,\Omega\big)}{\sin\Omega}\, z_A + \frac{\sin(u\,\Omega)}{\sin\Omega}\, z_B .$$
"""

GAN = r"""
**The game.** A generator $G$ maps noise $z \sim p(z) = \mathcal{N}(0, I)$ to images; a discriminator $D$ scores how
real an image looks. They play

$$\min_G \max_D \; V(D, G) = \mathbb{E}_{x \sim p_{\text{data}}}\big[\log D(x)\big] + \mathbb{E}_{z \sim p(z)}\big[\log\big(1 - D(G(z))\big)\big].$$

The lab trains $G$ with the non-saturating loss $-\mathbb{E}_z[\log D(G(z))]$ (strong gradients early on, when $D$
rejects every fake). No likelihood and no encoder: a grid is just $G(z)$ for the seed's $z$.

**The optimum.** For a fixed $G$ with image density $p_g$, the best discriminator is
$D^*(x) = \frac{p_{\text{data}}(x)}{p_{\text{data}}(x) + p_g(x)}$, and then
$V(D^*, G) = -\log 4 + 2\,\mathrm{JSD}(p_{\text{data}} \,\|\, p_g)$, whose minimum $-\log 4$ needs $p_g = p_{\text{data}}$.
Against $D^*$, the minimax generator loss $\mathbb{E}_z \log(1 - D^*(G(z)))$ descends the Jensen-Shannon divergence
(Goodfellow et al. 2014, Thm. 1); the non-saturating loss the lab trains with descends
$D_{\mathrm{KL}}(p_g \,\|\, p_{\text{data}}) - 2\,\mathrm{JSD}$ instead (Arjovsky & Bottou 2017, Thm. 2.5): same
equilibrium, a different path (the reverse KL punishes fakes off the data far more than missing modes).

**Truncation** ($\psi$ on the slider): entries of $z$ with $|z_i| > \psi$ are drawn again, trading diversity for
typical, cleaner images. **The walk** decodes $G(z(u))$ along the same lerp/slerp paths as the VAE tab.
"""

DIFFUSION = r"""
**Forward process (fixed, no learning).** With a schedule $\beta_1, \dots, \beta_T$, $\alpha_t = 1 - \beta_t$ and
$\bar\alpha_t = \prod_{s \le t} \alpha_s$:

$$q(x_t \mid x_{t-1}) = \mathcal{N}\big(\sqrt{\alpha_t}\, x_{t-1},\, \beta_t I\big), \qquad q(x_t \mid x_0) = \mathcal{N}\big(\sqrt{\bar\alpha_t}\, x_0,\, (1 - \bar\alpha_t) I\big).$$

"The forward process" strip draws $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \varepsilon$ with one
noise draw; its caption lists $\sqrt{\bar\alpha_t}$, the share of the digit left at each $t$.

**Training.** A network $\epsilon_\theta(x_t, t)$ learns to predict the noise:

$$L_{\text{simple}} = \mathbb{E}_{t,\, x_0,\, \varepsilon}\Big[\big\lVert \varepsilon - \epsilon_\theta\big(\sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \varepsilon,\; t\big) \big\rVert^2\Big].$$

**Predicted $x_0$** (the middle panel): $\hat x_0 = \big(x_t - \sqrt{1 - \bar\alpha_t}\, \epsilon_\theta(x_t, t)\big) / \sqrt{\bar\alpha_t}$.

**Reverse step, ancestral DDPM** (the left panel moves by this):

$$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\, \epsilon_\theta(x_t, t)\Big) + \sigma_t\, z, \qquad z \sim \mathcal{N}(0, I),\;\; \sigma_t^2 = \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t \text{ (or } \beta_t\text{)}.$$

The lab writes it as the mean of $q(x_{t-1} \mid x_t, \hat x_0)$ with $\hat x_0$ clipped to $[-1, 1]$, which is the same
step before clipping, and with fewer steps than $T$ it jumps between the chosen timesteps.
**DDIM** ($\eta = 0$, deterministic) jumps from $t$ to an earlier $t'$ by
$x_{t'} = \sqrt{\bar\alpha_{t'}}\, \hat x_0 + \sqrt{1 - \bar\alpha_{t'}}\, \epsilon_\theta(x_t, t)$.
The `diffusers:*` samplers take other steps along the same reverse process: Euler and Heun integrate its
probability-flow ODE (deterministic, like DDIM), EulerAncestral adds fresh noise at each step (like
DDPM), and DPM-Solver and UniPC are higher-order ODE solvers; all call the same $\epsilon_\theta$.

**Flow matching** (the third button; Lipman et al. 2023, Liu et al. 2022) trains the same UNet on a straight path
from data to noise, $x_t = (1 - t)\, x_0 + t\, \varepsilon$ with $t \in [0, 1]$, to predict its velocity:

$$L_{\text{FM}} = \mathbb{E}_{t,\, x_0,\, \varepsilon}\big[\lVert v_\theta(x_t, t) - (\varepsilon - x_0) \rVert^2\big].$$

Sampling integrates $\mathrm{d}x/\mathrm{d}t = v_\theta(x, t)$ from noise at $t = 1$ down to $t = 0$; an Euler step is
$x_{t'} = x_t + (t' - t)\, v_\theta(x_t, t)$. The middle panel then shows where the velocity points,
$\hat x_0 = x_t - t\, v_\theta(x_t, t)$. On this path $\alpha_t = 1 - t$ and $\sigma_t = t$: a diffusion with another schedule
and a velocity parameterisation, $v = \dot\alpha_t\, x_0 + \dot\sigma_t\, \varepsilon$.

**Classifier-free guidance** (the guidance section; Ho & Salimans 2022). One network $\epsilon_\theta(x_t, t, y)$
is trained with the class $y$ replaced by "none" for a share of the images, so it predicts the noise both told the
class and not. Each step of any sampler then uses

$$\tilde\epsilon = \epsilon_\theta(x_t, t, \varnothing) + w\,\big(\epsilon_\theta(x_t, t, y) - \epsilon_\theta(x_t, t, \varnothing)\big),$$

Ho & Salimans' eq. 6 written with $w = 1 + w'$: $w = 0$ is the unconditional model, $w = 1$ the conditional one,
$w > 1$ goes further along the class's direction. For exact predictions
$\epsilon(x_t, t, y) - \epsilon(x_t, t, \varnothing) = -\sqrt{1 - \bar\alpha_t}\, \nabla_{x_t} \log p(y \mid x_t)$
(since $\epsilon = -\sqrt{1 - \bar\alpha_t}\, \nabla \log p_t$): an implicit classifier's gradient. Since $\hat x_0$ is linear in $\epsilon$ at a fixed $x_t$, the
same mix holds for the three pictures: guided $\hat x_0$ = unconditional $+\, w\,$(conditional $-$ unconditional).
With $w > 1$ that $\hat x_0$ leaves $[-1, 1]$ and is clipped; the lab's DDIM then takes its noise from the clipped
$\hat x_0$, $\epsilon = (x_t - \sqrt{\bar\alpha_t}\, \hat x_0) / \sqrt{1 - \bar\alpha_t}$, so that its step stays
one consistent jump (with the unclipped noise, DDIM asked for a 7 at $w = 3$ drew 0s and 6s).
"""

HIERARCHY = r"""
**Diffusion is a VAE with $T$ latent levels** (Ho et al. 2020, sec. 2; Sohl-Dickstein et al. 2015). Its encoder is
fixed, not learned: $q(x_t \mid x_{t-1}) = \mathcal{N}\big(\sqrt{1 - \beta_t}\, x_{t-1},\, \beta_t I\big)$, one level at a
time (the top row draws exactly this chain). Its decoder is learned and goes one level down:
$p_\theta(x_{t-1} \mid x_t) = \mathcal{N}\big(\tilde\mu_t(\hat x_0, x_t),\, \sigma_t^2 I\big)$, the posterior mean at the
network's $\hat x_0$ (second row: $\hat x_0$; third and fourth: the decoder's mean and one draw).
The same derivation as the VAE's bound gives one term per level (Ho et al. 2020, eq. 5):

$$-\log p_\theta(x_0) \le \underbrace{D_{\mathrm{KL}}\big(q(x_T \mid x_0)\,\|\,p(x_T)\big)}_{L_T} + \sum_{t > 1} \underbrace{\mathbb{E}_q\, D_{\mathrm{KL}}\big(q(x_{t-1} \mid x_t, x_0)\,\|\,p_\theta(x_{t-1} \mid x_t)\big)}_{L_{t-1}} \; \underbrace{-\, \mathbb{E}_q \log p_\theta(x_0 \mid x_1)}_{L_0}.$$

The VAE has one level: $-\log p_\theta(x) \le \mathbb{E}_{q(z \mid x)}[-\log p_\theta(x \mid z)] + D_{\mathrm{KL}}\big(q(z \mid x)\,\|\,p(z)\big)$.
Its single KL is the counterpart of the whole sum $\sum_t L_{t-1}$, and its reconstruction that of $L_0$. The plot
gives each term in bits/dim; the bars add up to the variational bound of the Compare tab. (The lab counts timesteps
from 0, as diffusers does: its level $t = 0$ is the paper's $x_1$.)
"""

SCORE = r"""
**What the noise predictor learns: the score.** For $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon$,
the best noise prediction in squared error is $\mathbb{E}[\varepsilon \mid x_t]$, and
$\nabla_{x_t} \log q_t(x_t) = -\mathbb{E}[\varepsilon \mid x_t] / \sqrt{1 - \bar\alpha_t}$ (Vincent 2011; Song & Ermon 2019).
So $L_{\text{simple}}$ is denoising score matching, and the trained network gives the score

$$s_\theta(x, t) = -\frac{\epsilon_\theta(x, t)}{\sqrt{1 - \bar\alpha_t}} \approx \nabla_x \log q_t(x).$$

The arrows compare $s_\theta$ with the true score of the noised toy density $q_t$ (closed form for Gaussian
mixtures and the checkerboard). The error number is $\mathbb{E}\lVert s_\theta - \nabla \log q_t\rVert^2 / \mathbb{E}\lVert \nabla \log q_t\rVert^2$
over $x_t \sim q_t$.

**Tweedie's formula** ties the score to the image tab's predicted $x_0$:
$\mathbb{E}[x_0 \mid x_t] = \big(x_t + (1 - \bar\alpha_t)\, \nabla \log q_t(x_t)\big) / \sqrt{\bar\alpha_t}$, which with $s_\theta$ is exactly
$\hat x_0 = \big(x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon_\theta\big)/\sqrt{\bar\alpha_t}$.

**Sampling with the score alone: annealed Langevin dynamics** (Song & Ermon 2019, Algorithm 1). From pure noise,
for noise levels $\sigma_1 > \dots > \sigma_L$, repeat $x \leftarrow x + \tfrac{\alpha_i}{2}\, s_\theta(x, \sigma_i) + \sqrt{\alpha_i}\, z$,
$z \sim \mathcal{N}(0, I)$, with $\alpha_i = \epsilon\, \sigma_i^2 / \sigma_L^2$. No DDPM update is involved; only the score.
"""

DIVERGENCE = r"""
**The GAN as divergence minimisation** (Goodfellow et al. 2014, Prop. 1 and Thm. 1). For a fixed generator with
density $p_g$, $V(D, G) = \mathbb{E}_{p_{\text{data}}}\log D(x) + \mathbb{E}_{p_g}\log(1 - D(x))$ is maximised by

$$D^*(x) = \frac{p_{\text{data}}(x)}{p_{\text{data}}(x) + p_g(x)}, \qquad V(D^*, G) = -\log 4 + 2\, \mathrm{JSD}(p_{\text{data}}\,\|\,p_g),$$

with $\mathrm{JSD}(p\,\|\,q) = \tfrac12 D_{\mathrm{KL}}(p\,\|\,m) + \tfrac12 D_{\mathrm{KL}}(q\,\|\,m)$, $m = \tfrac12(p + q)$, between 0 and
$\log 2$. Which divergence a generator step against $D^*$ goes down depends on the generator's loss:

- **minimax**, $\mathbb{E}_z \log(1 - D^*(G(z)))$: $V(D^*, G)$ less its data term, so its gradient is that of
  $2\,\mathrm{JSD}(p_{\text{data}}\,\|\,p_g)$ (Goodfellow et al. 2014, Thm. 1);
- **non-saturating**, $-\mathbb{E}_z \log D^*(G(z))$ (the lab's default: its gradient does not vanish when $D$ rejects
  the fakes): its gradient is that of $D_{\mathrm{KL}}(p_g\,\|\,p_{\text{data}}) - 2\,\mathrm{JSD}(p_{\text{data}}\,\|\,p_g)$
  (Arjovsky & Bottou 2017, Thm. 2.5), not of the JSD.

On the 2-D toys $p_{\text{data}}$ is exact and $p_g$ is estimated from generator samples (a kernel density estimate), so
the playground can draw $D^*$ beside the learned $D$ and track the JSD and $D_{\mathrm{KL}}(p_g\,\|\,p_{\text{data}})$
while the GAN trains, under either loss (free play's "GAN generator loss"; the lesson trains both).
"""

# Every technical term the pages use, one short definition each (with its equation where one exists). Kept in
# one place so that a caption can say "see the glossary" and mean one definition.
ONE_PATH = r"""
**One path, two parameterisations** (Lipman et al. 2023, sec. 4.1; Kingma & Gao 2023; Gao et al. 2024). Both
models noise data along a Gaussian path $x_\tau = \alpha_\tau x_0 + \sigma_\tau \epsilon$: diffusion with
$\alpha = \sqrt{\bar\alpha_t}$, $\sigma = \sqrt{1 - \bar\alpha_t}$; flow matching with $\alpha = 1 - t$,
$\sigma = t$. Any such path is the straight one after a change of units:

$$y = \frac{x_\tau}{\alpha_\tau + \sigma_\tau} = (1 - s)\, x_0 + s\, \epsilon, \qquad s = \frac{\sigma_\tau}{\alpha_\tau + \sigma_\tau}.$$

The conditional velocity of a Gaussian path is $u_\tau(x \mid x_0) = \alpha'_\tau x_0 + \sigma'_\tau \epsilon$; on the
straight path it is $\epsilon - x_0$, and the ODE that carries noise to data has the velocity

$$\frac{dy}{ds} = \mathbb{E}[\epsilon - x_0 \mid y] = \hat\epsilon - \hat x_0 .$$

Flow matching learns that velocity $v_\theta(y, s)$ directly; the diffusion model learns $\hat\epsilon$ and gives
$\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\, \hat\epsilon) / \sqrt{\bar\alpha_t}$. Its probability-flow ODE is this ODE, and
a deterministic DDIM step is exactly Euler's step on it: $y' = y + (s' - s)(\hat\epsilon - \hat x_0)$ (the lab's
tests check the identity). So the two models differ in what the network predicts and in how training weights
the noise levels, not in the kind of path they learn to follow.

**Straightness** (Liu et al. 2022): $S = \int_0^1 \mathbb{E}\,\| (y_1 - y_0) - \tfrac{dy}{ds} \|^2 \, ds$ per pixel,
zero when every path is a line run at constant speed (one Euler step would then be exact). Straighter paths need
fewer steps; reflow (Liu et al.'s 2-rectified flow), not drawn here yet, is trained to straighten them.
"""

GLOSSARY = {
    "bits/dim": r"$-\log_2 p(x) / D$ with $D = 784$ pixel values: how many bits per pixel the model needs to "
                r"encode a test image; lower means the model gives real images more probability.",
    "D*": r"the optimal discriminator for a fixed generator, $D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))$ "
          r"(Goodfellow et al. 2014, Prop. 1).",
    "density / coverage": r"k-NN balls round the real samples only (Naeem et al. 2020): density counts how many "
                          r"balls each sample falls in (about 1 when samples are spread like real ones), coverage "
                          r"is the share of real samples whose ball holds at least one generated sample.",
    "ELBO": r"evidence lower bound of a VAE: $\log p(x) \ge \mathbb{E}_{q(z|x)}[\log p(x|z)] - "
            r"\mathrm{KL}(q(z|x)\,\|\,p(z))$ (Kingma & Welling 2014).",
    "EMA": r"exponential moving average of a network's weights during training, $\bar\theta \leftarrow "
           r"\beta \bar\theta + (1 - \beta)\theta$; sampled instead of the raw weights, it smooths the last steps' "
           r"noise.",
    "FD (Frechet distance)": r"$\|\mu_r - \mu_g\|^2 + \mathrm{Tr}(\Sigma_r + \Sigma_g - 2(\Sigma_r\Sigma_g)^{1/2})$ "
                             r"between Gaussians fitted to real and generated features (Heusel et al. 2017); lower "
                             r"is better. Measured in the lab's own classifiers' features (not Inception's), so its "
                             r"scale differs between the two nets.",
    "IWAE": r"importance-weighted bound, $\log p(x) \ge \mathbb{E}\,\log \frac{1}{k}\sum_{i=1}^k "
            r"\frac{p(x, z_i)}{q(z_i|x)}$, tighter than the ELBO as $k$ grows (Burda et al. 2016).",
    "JSD": r"Jensen-Shannon divergence, $\tfrac12 \mathrm{KL}(p\,\|\,m) + \tfrac12 \mathrm{KL}(q\,\|\,m)$ with "
           r"$m = (p + q)/2$; the minimax GAN's generator minimises it against $D^*$.",
    "KID": r"kernel inception distance: the unbiased squared MMD between feature sets with the kernel "
           r"$k(x, y) = (x^\top y / d + 1)^3$ (Binkowski et al. 2018), here in the lab's classifiers' features.",
    "NFE": "network function evaluations per sample: how many times the sampler runs the network (the cost of a "
           "sample, whatever the hardware).",
    "precision / recall": "the share of generated samples inside the real images' k-NN manifold (fidelity), and "
                          "of real images inside the generated samples' manifold (diversity) (Kynkaanniemi et al. "
                          "2019).",
    "predicted x0": r"the model's estimate of the clean image at step $t$: $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}"
                    r"\,\epsilon_\theta(x_t, t)) / \sqrt{\bar\alpha_t}$ (Ho et al. 2020, from eq. 4).",
    "recognisable": "classified by the lab's feature net with confidence >= 0.9. A page that is no image of the "
                    "dataset at all (blank, noise, a pattern) is refused by the net's typicality gate and gets "
                    "confidence 0; otherwise this means confidently classified, not a good sample.",
    "score": r"the gradient of the log density, $\nabla_x \log p(x)$; a diffusion network's noise prediction is a "
             r"scaled score: $\nabla_{x_t} \log p_t(x_t) \approx -\epsilon_\theta(x_t, t) / \sqrt{1 - \bar\alpha_t}$.",
    "SE (standard error)": "the standard deviation of an estimate over repeated measurements; two numbers tie when "
                           "they differ by less than 2 SEs of their difference.",
    "sharpness": "mean squared pixel gradient of the samples, relative to real images' (1 = as sharp; below 1: "
                 "blurrier).",
    "slerp": r"spherical interpolation between latents: $z(s) = \frac{\sin((1-s)\theta)}{\sin\theta} z_a + "
             r"\frac{\sin(s\theta)}{\sin\theta} z_b$, $\theta$ the angle between them; it keeps the norm a Gaussian "
             r"latent typically has, where the straight line (lerp) passes through too short latents.",
    "guidance (classifier-free)": r"sampling a class-conditional diffusion model with the noise prediction "
                                  r"$\epsilon(\varnothing) + w\,(\epsilon(y) - \epsilon(\varnothing))$ (Ho & Salimans "
                                  r"2022): $w = 0$ unconditional, $w = 1$ conditional, larger $w$ more typical of the "
                                  r"class and less varied.",
    "truncation": r"resampling the GAN's latent entries beyond $\psi$ standard deviations (Brock et al. 2019): the "
                  r"samples come from near the latent's centre, trading diversity for fidelity, when the centre "
                  r"decodes well.",
    "Tweedie's formula": r"$\mathbb{E}[x_0 | x_t] = (x_t + (1 - \bar\alpha_t)\nabla \log p_t(x_t)) / "
                         r"\sqrt{\bar\alpha_t}$: the denoiser and the score are one quantity.",
    "VLB": r"diffusion's variational bound $L_T + \sum_{t > 1} L_{t-1} + L_0$ (Ho et al. 2020, eq. 5): an ELBO "
           r"with the noising process as a fixed encoder.",
    "x_t": r"the image noised to step $t$: $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon$, "
           r"$\epsilon \sim \mathcal N(0, I)$ (Ho et al. 2020, eq. 4).",
}


def glossary_markdown() -> str:
    return "\n".join(f"- **{term}**: {definition}" for term, definition in sorted(GLOSSARY.items(),
                                                                                  key=lambda kv: kv[0].lower()))
