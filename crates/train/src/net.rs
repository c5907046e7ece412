//! The heads' networks in candle: a batch of normalised embedding sequences in, logits per
//! window out; and the weights as plain arrays (what is trained, merged into ensembles and
//! exported).
//!
//! LSTM equations and weight layout follow the ONNX `LSTM` operator exactly, so export is a copy:
//! gates in the order input, output, forget, cell (`i, o, f, c`); `W` is [4H, in], `R` is [4H, H],
//! one bias `b` [4H] (exported as ONNX's `Wb`, with `Rb` = 0).
//!
//! ```text
//! g = x·Wᵀ + h·Rᵀ + b;  i, o, f = σ(g_i), σ(g_o), σ(g_f);  c' = f⊙c + i⊙tanh(g_c);  h' = o⊙tanh(c')
//! ```

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, RngExt};

/// One LSTM layer's weights, ONNX layout (gate order `i, o, f, c`), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct LstmWeights {
    pub input: usize,
    pub hidden: usize,
    /// [4·hidden, input]
    pub w: Vec<f32>,
    /// [4·hidden, hidden]
    pub r: Vec<f32>,
    /// [4·hidden]
    pub b: Vec<f32>,
}

/// A head's weights: LSTM layers (none for a logistic head), then the linear output layer.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadWeights {
    pub lstm: Vec<LstmWeights>,
    /// Inputs of the output layer (the embedding size, or the last LSTM layer's hidden size).
    pub out_input: usize,
    /// Number of labels.
    pub out_labels: usize,
    /// [labels, out_input]
    pub out_w: Vec<f32>,
    /// [labels]
    pub out_b: Vec<f32>,
}

fn uniform(rng: &mut impl Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

impl HeadWeights {
    /// Fresh weights: LSTM weights uniform in ±1/√H with the forget-gate bias at 1 (so the state
    /// starts out remembering), the output layer Glorot-uniform with zero bias.
    pub fn init(
        rng: &mut impl Rng,
        input: usize,
        labels: usize,
        layers: usize,
        hidden: usize,
    ) -> Self {
        let mut lstm = Vec::with_capacity(layers);
        let mut layer_input = input;
        for _ in 0..layers {
            let bound = 1.0 / (hidden as f32).sqrt();
            let w = uniform(rng, 4 * hidden * layer_input, bound);
            let r = uniform(rng, 4 * hidden * hidden, bound);
            let mut b = vec![0.0; 4 * hidden];
            b[2 * hidden..3 * hidden].fill(1.0);
            lstm.push(LstmWeights {
                input: layer_input,
                hidden,
                w,
                r,
                b,
            });
            layer_input = hidden;
        }
        let bound = (6.0 / (layer_input + labels) as f32).sqrt();
        Self {
            lstm,
            out_input: layer_input,
            out_labels: labels,
            out_w: uniform(rng, labels * layer_input, bound),
            out_b: vec![0.0; labels],
        }
    }

    /// One head whose logits are the mean of the members' logits. LSTM members become one LSTM
    /// of `M·H` units per layer with block-diagonal weights (gate-major: gate `g` of member `m`
    /// is rows `g·M·H + m·H ..`), so the ensemble streams like a single head.
    pub fn merge(members: &[HeadWeights]) -> HeadWeights {
        let m = members.len();
        if m == 1 {
            return members[0].clone();
        }
        let first = &members[0];
        let scale = 1.0 / m as f32;
        let labels = first.out_labels;
        let mut lstm = Vec::new();
        for l in 0..first.lstm.len() {
            let h = first.lstm[l].hidden;
            let mh = m * h;
            let member_input = first.lstm[l].input;
            // Layer 0 reads the shared embedding; later layers read their own member's block.
            let input = if l == 0 { member_input } else { mh };
            let mut w = vec![0.0; 4 * mh * input];
            let mut r = vec![0.0; 4 * mh * mh];
            let mut b = vec![0.0; 4 * mh];
            for (k, member) in members.iter().enumerate() {
                let lw = &member.lstm[l];
                let col0 = if l == 0 { 0 } else { k * h };
                for g in 0..4 {
                    for row in 0..h {
                        let src = g * h + row;
                        let dst = g * mh + k * h + row;
                        w[dst * input + col0..dst * input + col0 + member_input]
                            .copy_from_slice(&lw.w[src * member_input..(src + 1) * member_input]);
                        r[dst * mh + k * h..dst * mh + (k + 1) * h]
                            .copy_from_slice(&lw.r[src * h..(src + 1) * h]);
                        b[dst] = lw.b[src];
                    }
                }
            }
            lstm.push(LstmWeights {
                input,
                hidden: mh,
                w,
                r,
                b,
            });
        }
        let member_out = first.out_input;
        let out_input = if lstm.is_empty() {
            member_out
        } else {
            m * member_out
        };
        let mut out_w = vec![0.0; labels * out_input];
        let mut out_b = vec![0.0; labels];
        for (k, member) in members.iter().enumerate() {
            let col0 = if lstm.is_empty() { 0 } else { k * member_out };
            for j in 0..labels {
                for i in 0..member_out {
                    out_w[j * out_input + col0 + i] += scale * member.out_w[j * member_out + i];
                }
                out_b[j] += scale * member.out_b[j];
            }
        }
        HeadWeights {
            lstm,
            out_input,
            out_labels: labels,
            out_w,
            out_b,
        }
    }
}

/// Dropout masks drawn from the training run's seeded generator.
pub(crate) struct Dropout<'a, R: Rng> {
    pub rng: &'a mut R,
    pub input: f32,
    pub hidden: f32,
}

impl<R: Rng> Dropout<'_, R> {
    fn apply(&mut self, x: &Tensor, p: f32) -> candle_core::Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - p;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if self.rng.random::<f32>() < keep {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect();
        x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
    }
}

struct Layer {
    hidden: usize,
    /// Wᵀ [in, 4H], Rᵀ [H, 4H]
    wt: Tensor,
    rt: Tensor,
    b: Tensor,
}

/// The network as candle tensors (trainable `Var`s while training, constants otherwise).
pub(crate) struct Net {
    layers: Vec<Layer>,
    /// out_wᵀ [in, K]
    out_wt: Tensor,
    out_b: Tensor,
    labels: usize,
}

/// Trainable variables of a [`Net`], in [`Net::to_weights`] order.
pub(crate) struct NetVars {
    pub vars: Vec<Var>,
    shapes: HeadWeights,
}

impl NetVars {
    pub fn new(weights: &HeadWeights, device: &Device) -> candle_core::Result<Self> {
        let mut vars = Vec::new();
        for l in &weights.lstm {
            vars.push(Var::from_slice(&l.w, (4 * l.hidden, l.input), device)?);
            vars.push(Var::from_slice(&l.r, (4 * l.hidden, l.hidden), device)?);
            vars.push(Var::from_slice(&l.b, 4 * l.hidden, device)?);
        }
        vars.push(Var::from_slice(
            &weights.out_w,
            (weights.out_labels, weights.out_input),
            device,
        )?);
        vars.push(Var::from_slice(&weights.out_b, weights.out_labels, device)?);
        Ok(Self {
            vars,
            shapes: weights.clone(),
        })
    }

    /// The weight matrices (LSTM `W`, `R` and the output layer's weights; not the biases): what
    /// an L2 penalty applies to.
    pub fn weight_vars(&self) -> Vec<&Var> {
        let layers = self.shapes.lstm.len();
        let mut weights = Vec::with_capacity(2 * layers + 1);
        for l in 0..layers {
            weights.push(&self.vars[3 * l]);
            weights.push(&self.vars[3 * l + 1]);
        }
        weights.push(&self.vars[3 * layers]);
        weights
    }

    /// The network on these variables (gradients flow back to them).
    pub fn net(&self) -> candle_core::Result<Net> {
        Net::from_tensors(
            &self.shapes,
            self.vars.iter().map(|v| v.as_tensor().clone()).collect(),
        )
    }

    /// The current values, as plain weights.
    pub fn to_weights(&self) -> candle_core::Result<HeadWeights> {
        let mut weights = self.shapes.clone();
        let mut values = self
            .vars
            .iter()
            .map(|v| v.as_tensor().flatten_all().and_then(|t| t.to_vec1::<f32>()));
        for l in &mut weights.lstm {
            l.w = values.next().unwrap_or_else(|| Ok(Vec::new()))?;
            l.r = values.next().unwrap_or_else(|| Ok(Vec::new()))?;
            l.b = values.next().unwrap_or_else(|| Ok(Vec::new()))?;
        }
        weights.out_w = values.next().unwrap_or_else(|| Ok(Vec::new()))?;
        weights.out_b = values.next().unwrap_or_else(|| Ok(Vec::new()))?;
        Ok(weights)
    }
}

impl Net {
    /// A constant network (no gradients) from plain weights.
    pub fn new(weights: &HeadWeights, device: &Device) -> candle_core::Result<Self> {
        let mut tensors = Vec::new();
        for l in &weights.lstm {
            tensors.push(Tensor::from_slice(&l.w, (4 * l.hidden, l.input), device)?);
            tensors.push(Tensor::from_slice(&l.r, (4 * l.hidden, l.hidden), device)?);
            tensors.push(Tensor::from_slice(&l.b, 4 * l.hidden, device)?);
        }
        tensors.push(Tensor::from_slice(
            &weights.out_w,
            (weights.out_labels, weights.out_input),
            device,
        )?);
        tensors.push(Tensor::from_slice(
            &weights.out_b,
            weights.out_labels,
            device,
        )?);
        Self::from_tensors(weights, tensors)
    }

    fn from_tensors(shapes: &HeadWeights, tensors: Vec<Tensor>) -> candle_core::Result<Self> {
        let mut it = tensors.into_iter();
        let mut next = || {
            it.next()
                .ok_or_else(|| candle_core::Error::Msg("missing weight tensor".into()))
        };
        let mut layers = Vec::new();
        for l in &shapes.lstm {
            let (w, r, b) = (next()?, next()?, next()?);
            layers.push(Layer {
                hidden: l.hidden,
                wt: w.t()?,
                rt: r.t()?,
                b,
            });
        }
        let out_w = next()?;
        let out_b = next()?;
        Ok(Self {
            layers,
            out_wt: out_w.t()?,
            out_b,
            labels: shapes.out_labels,
        })
    }

    /// Logits [B, T, K] for a batch of sequences `x` [B, T, D], every sequence starting from a
    /// zero state. With `dropout`, masks are applied to the input and to each LSTM layer's output.
    pub fn forward<R: Rng>(
        &self,
        x: &Tensor,
        mut dropout: Option<&mut Dropout<'_, R>>,
    ) -> candle_core::Result<Tensor> {
        let (batch, steps, _) = x.dims3()?;
        let mut seq = match dropout.as_deref_mut() {
            Some(d) => {
                let p = d.input;
                d.apply(x, p)?
            }
            None => x.clone(),
        };
        for layer in &self.layers {
            let h_size = layer.hidden;
            let input = seq.dim(2)?;
            let xw = seq
                .reshape((batch * steps, input))?
                .matmul(&layer.wt)?
                .broadcast_add(&layer.b)?
                .reshape((batch, steps, 4 * h_size))?;
            let mut h = Tensor::zeros((batch, h_size), DType::F32, x.device())?;
            let mut c = h.clone();
            let mut outputs = Vec::with_capacity(steps);
            for t in 0..steps {
                let gates = (xw.narrow(1, t, 1)?.squeeze(1)? + h.matmul(&layer.rt)?)?;
                let iof = candle_nn::ops::sigmoid(&gates.narrow(1, 0, 3 * h_size)?)?;
                let i = iof.narrow(1, 0, h_size)?;
                let o = iof.narrow(1, h_size, h_size)?;
                let f = iof.narrow(1, 2 * h_size, h_size)?;
                let g = gates.narrow(1, 3 * h_size, h_size)?.tanh()?;
                c = ((f * &c)? + (i * g)?)?;
                h = (o * c.tanh()?)?;
                outputs.push(h.clone());
            }
            seq = Tensor::stack(&outputs, 1)?;
            if let Some(d) = dropout.as_deref_mut() {
                let p = d.hidden;
                seq = d.apply(&seq, p)?;
            }
        }
        let input = seq.dim(2)?;
        seq.reshape((batch * steps, input))?
            .matmul(&self.out_wt)?
            .broadcast_add(&self.out_b)?
            .reshape((batch, steps, self.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn logits(weights: &HeadWeights, x: &[f32], steps: usize, dim: usize) -> Vec<Vec<f32>> {
        let net = Net::new(weights, &Device::Cpu).unwrap();
        let x = Tensor::from_slice(x, (1, steps, dim), &Device::Cpu).unwrap();
        let out = net.forward::<rand::rngs::ChaCha8Rng>(&x, None).unwrap();
        out.squeeze(0).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn merged_ensemble_gives_the_mean_of_member_logits() {
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(3);
        let (dim, steps) = (5, 7);
        let x: Vec<f32> = (0..dim * steps)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        for layers in [0, 1, 3] {
            let members: Vec<HeadWeights> = (0..3)
                .map(|_| HeadWeights::init(&mut rng, dim, 4, layers, 6))
                .collect();
            let merged = HeadWeights::merge(&members);
            let got = logits(&merged, &x, steps, dim);
            let each: Vec<_> = members.iter().map(|m| logits(m, &x, steps, dim)).collect();
            for t in 0..steps {
                for k in 0..4 {
                    let mean = each.iter().map(|e| e[t][k]).sum::<f32>() / 3.0;
                    assert!(
                        (got[t][k] - mean).abs() < 1e-5,
                        "layers {layers} t {t}: {} vs {mean}",
                        got[t][k]
                    );
                }
            }
        }
    }

    #[test]
    fn matches_a_scalar_lstm() {
        // One unit, one input: the equations by hand.
        let weights = HeadWeights {
            lstm: vec![LstmWeights {
                input: 1,
                hidden: 1,
                w: vec![0.5, -0.3, 0.8, 0.2],
                r: vec![0.1, 0.4, -0.6, 0.9],
                b: vec![0.05, -0.1, 1.0, 0.3],
            }],
            out_input: 1,
            out_labels: 1,
            out_w: vec![2.0],
            out_b: vec![-0.5],
        };
        let xs = [0.7f32, -1.2, 0.4];
        let got = logits(&weights, &xs, 3, 1);
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let (mut h, mut c) = (0.0f32, 0.0f32);
        for (t, x) in xs.iter().enumerate() {
            let g: Vec<f32> = (0..4)
                .map(|j| weights.lstm[0].w[j] * x + weights.lstm[0].r[j] * h + weights.lstm[0].b[j])
                .collect();
            let (i, o, f, cc) = (sig(g[0]), sig(g[1]), sig(g[2]), g[3].tanh());
            c = f * c + i * cc;
            h = o * c.tanh();
            assert!((got[t][0] - (2.0 * h - 0.5)).abs() < 1e-6);
        }
    }
}
