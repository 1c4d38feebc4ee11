//! STL (Cleveland, Cleveland, McRae & Terpenning, 1990, "STL: A Seasonal-Trend
//! Decomposition Procedure Based on Loess") with the parameters S-H-ESD uses, returning
//! the same seasonal component as `stlrs` 0.4, bit for bit, at about half the operations.
//!
//! Why not the crate: in wasmi the function's time is the number of wasm operators run,
//! and 82% of them were `stlrs`'s loess kernel (`est`), which walks each neighbourhood
//! five times, recomputing the tricube weights (a division and six multiplications a
//! point) for every fitted point. Those weights depend only on where the point sits in
//! its neighbourhood, never on the data, so here they are computed once per shape and
//! kept ([`Kernels`]); the passes that remain are fused and run over slices without
//! bounds checks. The order of every floating-point operation is the crate's (no sum is
//! reassociated, no product reordered), so the result is identical:
//! `tests/equivalence.rs` compares the two on every period and length it tries.

/// The robustness iterations `stlrs` runs when asked for `robust(true)`.
const OUTER_LOOPS: usize = 15;

/// The seasonal component of `series` with period `period`, as
/// `Stl::params().robust(true).seasonal_length(seasonal_length).fit(series, period)`
/// computes it in `stlrs` 0.4 (seasonal degree 0, trend and low-pass degree 1, one inner
/// loop, fifteen outer loops, the crate's default lengths and jumps).
pub fn seasonal(
    series: &[f32],
    period: usize,
    seasonal_length: usize,
) -> Result<Vec<f32>, &'static str> {
    let n = series.len();
    if n / 2 < period {
        return Err("series has less than two periods");
    }
    if period < 2 {
        return Err("period must be at least 2");
    }
    let np = period;
    let ns = odd(seasonal_length.max(3));
    let nt = odd((((1.5 * np as f32) / (1.0 - 1.5 / ns as f32)).ceil() as usize).max(3));
    let nl = odd(np.max(3));
    let jump = |length: usize| (length as f32 / 10.0).ceil() as usize;
    let seasonal_pass = Smoother::new(ns, false, jump(ns));
    let low_pass = Smoother::new(nl, true, jump(nl));
    let trend_pass = Smoother::new(nt, true, jump(nt));
    let mut stl = Decomposition {
        y: series,
        np,
        seasonal_pass,
        low_pass,
        trend_pass,
        robustness: vec![0.0; n],
        season: vec![0.0; n],
        trend: vec![0.0; n],
        cycle: vec![0.0; n + 2 * np],
        smoothed: vec![0.0; n + 2 * np],
        work: vec![0.0; n + 2 * np],
        sub: Subseries::default(),
    };
    let mut robust = false;
    for outer in 0..=OUTER_LOOPS {
        stl.inner(robust);
        if outer == OUTER_LOOPS {
            break;
        }
        stl.update_robustness();
        robust = true;
    }
    Ok(stl.season)
}

fn odd(length: usize) -> usize {
    if length.is_multiple_of(2) {
        length + 1
    } else {
        length
    }
}

struct Decomposition<'a> {
    y: &'a [f32],
    np: usize,
    seasonal_pass: Smoother,
    low_pass: Smoother,
    trend_pass: Smoother,
    robustness: Vec<f32>,
    season: Vec<f32>,
    trend: Vec<f32>,
    /// The cycle-subseries smoothed and extended by a period at each end (n + 2·np).
    cycle: Vec<f32>,
    /// Scratch of n + 2·np: the moving averages, then the low-pass.
    smoothed: Vec<f32>,
    work: Vec<f32>,
    sub: Subseries,
}

/// One cycle-subseries and its fit, reused from one to the next.
#[derive(Default)]
struct Subseries {
    values: Vec<f32>,
    robustness: Vec<f32>,
    fit: Vec<f32>,
}

impl Decomposition<'_> {
    /// The crate's `onestp` with one inner loop.
    fn inner(&mut self, robust: bool) {
        let n = self.y.len();
        let np = self.np;
        for ((w, y), t) in self.work.iter_mut().zip(self.y).zip(&self.trend) {
            *w = y - t;
        }
        self.cycle_subseries(robust);
        moving_averages(&self.cycle, np, &mut self.smoothed, &mut self.work);
        // The low-pass of the moving averages, into `work` (n long).
        self.low_pass
            .smooth(&self.smoothed[..n], None, &mut self.work[..n]);
        for ((s, c), l) in self
            .season
            .iter_mut()
            .zip(&self.cycle[np..])
            .zip(&self.work)
        {
            *s = c - l;
        }
        for ((w, y), s) in self.work.iter_mut().zip(self.y).zip(&self.season) {
            *w = y - s;
        }
        let weights = robust.then_some(&self.robustness[..]);
        self.trend_pass
            .smooth(&self.work[..n], weights, &mut self.trend);
    }

    /// The crate's `ss`: each cycle-subseries (every np-th sample of `work`) smoothed and
    /// extended by one point at each end, into `cycle`.
    fn cycle_subseries(&mut self, robust: bool) {
        let n = self.y.len();
        let np = self.np;
        let sub = &mut self.sub;
        for j in 0..np {
            let k = (n - j - 1) / np + 1;
            sub.values.clear();
            sub.values
                .extend(self.work[j..n].iter().step_by(np).take(k).copied());
            sub.robustness.clear();
            if robust {
                sub.robustness
                    .extend(self.robustness[j..n].iter().step_by(np).take(k).copied());
            }
            let weights = robust.then_some(&sub.robustness[..]);
            sub.fit.clear();
            sub.fit.resize(k + 2, 0.0);
            let pass = &mut self.seasonal_pass;
            pass.smooth(&sub.values, weights, &mut sub.fit[1..=k]);
            let nright = pass.len.min(k);
            sub.fit[0] = pass
                .fit(&sub.values, weights, 0, 1, nright)
                .unwrap_or(sub.fit[1]);
            let nleft = (k + 1).saturating_sub(pass.len).max(1);
            sub.fit[k + 1] = pass
                .fit(&sub.values, weights, k + 1, nleft, k)
                .unwrap_or(sub.fit[k]);
            for (out, fit) in self.cycle[j..].iter_mut().step_by(np).zip(&sub.fit) {
                *out = *fit;
            }
        }
    }

    /// The crate's `rwts`: bisquare robustness weights from the residuals of
    /// `trend + season`. Only the two middle order statistics of the residuals are
    /// needed, so they are selected rather than sorted: the same values.
    fn update_robustness(&mut self) {
        let residual = |((y, t), s): ((&f32, &f32), &f32)| (y - (t + s)).abs();
        let fit = self.y.iter().zip(&self.trend).zip(&self.season);
        for (r, value) in self.robustness.iter_mut().zip(fit.clone().map(residual)) {
            *r = value;
        }
        let (lower, upper) = middle_pair(&mut self.robustness);
        let cmad = (3.0f64 as f32) * (lower + upper);
        let c9 = (0.999f64 as f32) * cmad;
        let c1 = (0.001f64 as f32) * cmad;
        for (weight, r) in self.robustness.iter_mut().zip(fit.map(residual)) {
            *weight = if r <= c1 {
                1.0
            } else if r <= c9 {
                let u = r / cmad;
                let v = 1.0 - u * u;
                v * v
            } else {
                0.0
            };
        }
    }
}

/// The two middle order statistics of `values` (the same one twice for an odd length),
/// selected in place: what sorting would leave at `(len - 1) / 2` and `len / 2`, at a
/// fraction of the operations. `values` is non-empty and has no NaN.
pub(crate) fn middle_pair(values: &mut [f32]) -> (f32, f32) {
    let (mid1, mid2) = ((values.len() - 1) / 2, values.len() / 2);
    let by_value = |a: &f32, b: &f32| a.partial_cmp(b).unwrap_or(core::cmp::Ordering::Equal);
    let (below, upper, _) = values.select_nth_unstable_by(mid2, by_value);
    let upper = *upper;
    if mid1 == mid2 {
        (upper, upper)
    } else {
        (
            below.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            upper,
        )
    }
}

/// The crate's `fts`: moving averages of length np, np and 3 over `x` (n + 2·np), into
/// `out` (n long), with `scratch` between.
fn moving_averages(x: &[f32], np: usize, out: &mut [f32], scratch: &mut [f32]) {
    let len = x.len();
    moving_average(x, np, out);
    moving_average(&out[..len - np + 1], np, scratch);
    moving_average(&scratch[..len - 2 * np + 2], 3, out);
}

/// The crate's `ma`: the running mean of `len` samples, kept as a running sum.
fn moving_average(x: &[f32], len: usize, ave: &mut [f32]) {
    let flen = len as f32;
    let mut v: f32 = x.iter().take(len).copied().sum();
    ave[0] = v / flen;
    for ((a, leaving), entering) in ave[1..=x.len() - len].iter_mut().zip(x).zip(&x[len..]) {
        v = v - leaving + entering;
        *a = v / flen;
    }
}

/// A loess smoother of one length and degree (the crate's `ess`), with the weights of
/// every neighbourhood shape it has met.
struct Smoother {
    len: usize,
    linear: bool,
    jump: usize,
    kernels: Kernels,
    /// The neighbourhood's weights for a robust fit.
    weights: Vec<f32>,
}

impl Smoother {
    fn new(len: usize, linear: bool, jump: usize) -> Self {
        Self {
            len,
            linear,
            jump,
            kernels: Kernels::default(),
            weights: Vec::new(),
        }
    }

    /// The crate's `ess`: `y` smoothed at every `jump`-th point (and the last), linearly
    /// interpolated between.
    fn smooth(&mut self, y: &[f32], rw: Option<&[f32]>, ys: &mut [f32]) {
        let n = y.len();
        if n < 2 {
            ys[0] = y[0];
            return;
        }
        let len = self.len;
        let newnj = self.jump.min(n - 1);
        let (mut nleft, mut nright) = (0, 0);
        if len >= n {
            (nleft, nright) = (1, n);
            for i in (1..=n).step_by(newnj) {
                ys[i - 1] = self.fit(y, rw, i, nleft, nright).unwrap_or(y[i - 1]);
            }
        } else if newnj == 1 {
            let nsh = len.div_ceil(2);
            (nleft, nright) = (1, len);
            for i in 1..=n {
                if i > nsh && nright != n {
                    nleft += 1;
                    nright += 1;
                }
                ys[i - 1] = self.fit(y, rw, i, nleft, nright).unwrap_or(y[i - 1]);
            }
        } else {
            let nsh = len.div_ceil(2);
            for i in (1..=n).step_by(newnj) {
                (nleft, nright) = if i < nsh {
                    (1, len)
                } else if i > n - nsh {
                    (n - len + 1, n)
                } else {
                    (i - nsh + 1, len + i - nsh)
                };
                ys[i - 1] = self.fit(y, rw, i, nleft, nright).unwrap_or(y[i - 1]);
            }
        }
        if newnj == 1 {
            return;
        }
        let step = newnj as f32;
        let mut i = 1;
        while i <= n - newnj {
            let (from, to) = (ys[i - 1], ys[i + newnj - 1]);
            let delta = (to - from) / step;
            for (offset, out) in ys[i..i + newnj - 1].iter_mut().enumerate() {
                *out = from + delta * (offset + 1) as f32;
            }
            i += newnj;
        }
        let k = ((n - 1) / newnj) * newnj + 1;
        if k != n {
            ys[n - 1] = self.fit(y, rw, n, nleft, nright).unwrap_or(y[n - 1]);
            if k != n - 1 {
                let from = ys[k - 1];
                let delta = (ys[n - 1] - from) / (n - k) as f32;
                for (offset, out) in ys[k..n - 1].iter_mut().enumerate() {
                    *out = from + delta * (offset + 1) as f32;
                }
            }
        }
    }

    /// The crate's `est`: the weighted (robustness `rw` if given) local fit at `xs` over
    /// `y[nleft - 1..nright]` (positions count from 1), or `None` where every weight is 0.
    fn fit(
        &mut self,
        y: &[f32],
        rw: Option<&[f32]>,
        xs: usize,
        nleft: usize,
        nright: usize,
    ) -> Option<f32> {
        let n = y.len();
        let range = n as f32 - 1.0;
        let x = xs as f32;
        let mut h = (x - nleft as f32).max(nright as f32 - x);
        if self.len > n {
            h += ((self.len - n) / 2) as f32;
        }
        let kernel = self.kernels.get(xs, nleft, nright, h);
        let y = &y[nleft - 1..nright];
        let linear = h > 0.0 && self.linear;
        // The weights normalised to sum 1 (the kernel's own, or with the robustness),
        // and for a linear fit their centre, Σ w·j.
        let mut centre = 0.0f32;
        let weights: &[f32] = match rw {
            None => {
                if kernel.sum <= 0.0 {
                    return None;
                }
                if linear {
                    let mut j = nleft as f32;
                    let (pairs, last) = kernel.normalised.as_chunks::<2>();
                    for [w0, w1] in pairs {
                        centre += w0 * j;
                        centre += w1 * (j + 1.0);
                        j += 2.0;
                    }
                    if let [weight] = last {
                        centre += weight * j;
                    }
                }
                &kernel.normalised
            }
            Some(rw) => {
                let w = &mut self.weights;
                w.resize(kernel.raw.len(), 0.0);
                let mut a = 0.0f32;
                // 1·r = r and 0·r = 0: the crate's product only where it makes one.
                let (w_pairs, w_last) = w.as_chunks_mut::<2>();
                let (k_pairs, k_last) = kernel.raw.as_chunks::<2>();
                let (r_pairs, r_last) = rw[nleft - 1..nright].as_chunks::<2>();
                for (([w0, w1], [k0, k1]), [r0, r1]) in w_pairs.iter_mut().zip(k_pairs).zip(r_pairs)
                {
                    *w0 = k0 * r0;
                    a += *w0;
                    *w1 = k1 * r1;
                    a += *w1;
                }
                if let ([weight], [k], [r]) = (w_last, k_last, r_last) {
                    *weight = k * r;
                    a += *weight;
                }
                if a <= 0.0 {
                    return None;
                }
                if !linear {
                    return Some(w.iter().zip(y).fold(0.0, |ys, (w, y)| ys + (w / a) * y));
                }
                let mut j = nleft as f32;
                let (pairs, last) = w.as_chunks_mut::<2>();
                for [w0, w1] in pairs {
                    *w0 /= a;
                    centre += *w0 * j;
                    *w1 /= a;
                    centre += *w1 * (j + 1.0);
                    j += 2.0;
                }
                if let [weight] = last {
                    *weight /= a;
                    centre += *weight * j;
                }
                w
            }
        };
        if linear {
            // These two loops are most of the function's time: they take two positions
            // a round (the same terms, added in the same order) to halve the
            // interpreter's loop overhead.
            let a = centre;
            let mut c = 0.0f32;
            let mut j = nleft as f32;
            let (pairs, last) = weights.as_chunks::<2>();
            for [w0, w1] in pairs {
                let d = j - a;
                c += w0 * (d * d);
                let d = (j + 1.0) - a;
                c += w1 * (d * d);
                j += 2.0;
            }
            if let [weight] = last {
                let d = j - a;
                c += weight * (d * d);
            }
            if c.sqrt() > (0.001f64 as f32) * range {
                let b = (x - a) / c;
                let mut ys = 0.0f32;
                let mut j = nleft as f32;
                let (y_pairs, y_last) = y.as_chunks::<2>();
                for ([w0, w1], [y0, y1]) in pairs.iter().zip(y_pairs) {
                    ys += (w0 * (b * (j - a) + 1.0)) * y0;
                    ys += (w1 * (b * ((j + 1.0) - a) + 1.0)) * y1;
                    j += 2.0;
                }
                if let ([weight], [y]) = (last, y_last) {
                    ys += (weight * (b * (j - a) + 1.0)) * y;
                }
                return Some(ys);
            }
        }
        Some(weights.iter().zip(y).fold(0.0, |ys, (w, y)| ys + w * y))
    }
}

/// The tricube weights of a neighbourhood: they depend only on the fitted point's
/// offset in it, its width and the bandwidth `h`, never on the data, so one smoother
/// meets the same few shapes in every iteration (the interior one most of all).
#[derive(Default)]
struct Kernels {
    shapes: Vec<Kernel>,
    /// The shape used last, tried first: consecutive interior fits share it.
    last: usize,
}

/// Shapes a smoother keeps: interior, the fits near each end, and the cycle-subseries'
/// four (for two subseries lengths). Past that a new shape replaces the oldest.
const MAX_KERNELS: usize = 64;

struct Kernel {
    offset: usize,
    width: usize,
    h: u32,
    /// The weight of each position, 0 outside the bandwidth.
    raw: Vec<f32>,
    /// Their sum, in the crate's order.
    sum: f32,
    /// `raw` divided by `sum` (when `sum` > 0): the weights of a fit without robustness.
    normalised: Vec<f32>,
}

impl Kernels {
    fn get(&mut self, xs: usize, nleft: usize, nright: usize, h: f32) -> &Kernel {
        // xs - nleft + 1, shifted by one so that xs = 0 (the extension before the
        // first point) needs no sign.
        let offset = xs + 1 - nleft;
        let width = nright + 1 - nleft;
        let matches = |k: &Kernel| k.offset == offset && k.width == width && k.h == h.to_bits();
        if !self.shapes.get(self.last).is_some_and(matches) {
            self.last = match self.shapes.iter().position(matches) {
                Some(found) => found,
                None => self.insert(Kernel::new(offset, width, h)),
            };
        }
        &self.shapes[self.last]
    }

    fn insert(&mut self, kernel: Kernel) -> usize {
        if self.shapes.len() < MAX_KERNELS {
            self.shapes.push(kernel);
            self.shapes.len() - 1
        } else {
            let slot = (self.last + 1) % MAX_KERNELS;
            self.shapes[slot] = kernel;
            slot
        }
    }
}

impl Kernel {
    fn new(offset: usize, width: usize, h: f32) -> Self {
        let h9 = (0.999f64 as f32) * h;
        let h1 = (0.001f64 as f32) * h;
        // Position j (from 1) minus xs, exactly as the crate's f32s give it: both are
        // integers far below 2^24.
        let raw: Vec<f32> = (0..width)
            .map(|k| {
                let r = (k as f32 + 1.0 - offset as f32).abs();
                if r > h9 {
                    0.0
                } else if r <= h1 {
                    1.0
                } else {
                    let u = r / h;
                    let v = 1.0 - u * u * u;
                    v * v * v
                }
            })
            .collect();
        // Adding a 0 leaves a non-negative sum as it is: the crate skips those terms.
        let sum = raw.iter().fold(0.0f32, |a, w| a + w);
        let normalised = if sum > 0.0 {
            raw.iter().map(|w| w / sum).collect()
        } else {
            Vec::new()
        };
        Self {
            offset,
            width,
            h: h.to_bits(),
            raw,
            sum,
            normalised,
        }
    }
}
