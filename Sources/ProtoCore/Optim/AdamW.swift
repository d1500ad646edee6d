// AdamW with decoupled weight decay, over one stage's flat parameter buffer.
import CKernels
import Foundation

/// Hyper-parameters of the optimizer (PyTorch's AdamW semantics).
public struct AdamWConfig: Codable, Equatable, Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0.1
    public init(beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8, weightDecay: Float = 0.1) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

/// First and second moments for every parameter, in one allocation each.
public final class AdamW {
    public let config: AdamWConfig
    public let m: FloatBuffer
    public let v: FloatBuffer
    /// Steps taken so far (bias correction uses t after increment).
    public var t: Int = 0
    private let decayRanges: [Range<Int>]
    /// AdamW covers [0, euclidean); the manifold tensors after it keep their moments in m and
    /// v too (so checkpoints hold them) but are stepped by `GrassmannAdam`.
    private let euclidean: Int

    public init(layout: ParamLayout, config: AdamWConfig) {
        self.config = config
        m = FloatBuffer(count: layout.count); v = FloatBuffer(count: layout.count)
        decayRanges = layout.tensors.filter(\.decay).map { $0.offset..<($0.offset + $0.count) }.sorted { $0.lowerBound < $1.lowerBound }
        euclidean = layout.euclideanCount
    }

    /// One update of the Euclidean parameters. `gradScale` multiplies every gradient first (global-norm clipping).
    /// p ← p·(1 − lr·wd) on decayed tensors, then p ← p − lr·m̂/(√v̂ + eps).
    public func step(params: FloatBuffer, grads: FloatBuffer, lr: Float, gradScale: Float = 1) {
        t += 1
        let b1 = config.beta1, b2 = config.beta2, eps = config.eps
        let bc1 = 1 - pow(b1, Float(t)), bc2 = 1 - pow(b2, Float(t))
        let stepSize = lr / bc1, bc2Sqrt = bc2.squareRoot()
        let decay = 1 - lr * config.weightDecay
        let p = params.ptr, g = grads.ptr, mp = m.ptr, vp = v.ptr
        let ranges = decayRanges, vector = VectorKernels.use
        // One pass over memory: each worker walks its chunk in segments that are either
        // inside a decayed tensor (factor `decay`) or not (factor 1).
        Parallel.chunks(euclidean, minPerChunk: 1 << 14) { lo, hi in
            func update(_ a: Int, _ b: Int, _ f: Float) {
                if vector {  // the same arithmetic, 16 lanes at a time (CKernels/elementwise.c)
                    pm_adamw_update(p + a, g + a, mp + a, vp + a, b - a, gradScale, b1, 1 - b1, b2, 1 - b2, f,
                                    stepSize, bc2Sqrt, eps)
                    return
                }
                for i in a..<b {
                    let gi = g[i] * gradScale
                    mp[i] = b1 * mp[i] + (1 - b1) * gi
                    vp[i] = b2 * vp[i] + (1 - b2) * gi * gi
                    p[i] = p[i] * f - stepSize * mp[i] / (vp[i].squareRoot() / bc2Sqrt + eps)
                }
            }
            var i = lo
            for r in ranges where r.upperBound > i && r.lowerBound < hi {
                let a = max(i, r.lowerBound), b = min(hi, r.upperBound)
                if a > i { update(i, a, 1) }
                update(a, b, decay)
                i = b
            }
            if i < hi { update(i, hi, 1) }
        }
    }

    /// The clipping multiplier for a global gradient norm (PyTorch's clip_grad_norm_ rule).
    public static func clipScale(globalNorm: Double, maxNorm: Float) -> Float {
        guard maxNorm > 0 else { return 1 }
        return Float(min(1, Double(maxNorm) / (globalNorm + 1e-6)))
    }
}
