// Riemannian Adam for orthonormal bases (d×k) — the adaptive shared U and the learned
// per-boundary projectors of SPEC §2. The loss depends on a basis only through its span, so
// the gradient is taken on the Grassmann manifold: G ← (I − M·Mᵀ)·G. Adam moments are kept
// on that tangent gradient (not transported between steps, a common approximation), the
// step is taken in the ambient space and retracted with a QR factorisation (modified
// Gram–Schmidt, twice, columns signed so R has a positive diagonal).
//
// Every rank that holds a copy must end with the same bits: the arithmetic is plain Swift
// loops in Double in a fixed order (no BLAS, whose kernels differ between CPUs), and only
// IEEE-exact operations (+, −, ×, ÷, sqrt) are used.

public enum GrassmannAdam {
    /// Steps `basis` (d, k) with gradient `grad` (d, k; overwritten with its tangent part)
    /// and moments `m`, `v` (d, k). `t` counts updates (1 for the first) for bias correction.
    public static func step(_ basis: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>,
                            m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                            d: Int, k: Int, lr: Float, t: Int, config: AdamWConfig) {
        // Tangent projection: G − M·(MᵀG).
        var mtg = [Double](repeating: 0, count: k * k)
        for r in 0..<d {
            for i in 0..<k {
                let mi = Double(basis[r * k + i])
                for j in 0..<k { mtg[i * k + j] += mi * Double(grad[r * k + j]) }
            }
        }
        for r in 0..<d {
            for j in 0..<k {
                var s = Double(grad[r * k + j])
                for i in 0..<k { s -= Double(basis[r * k + i]) * mtg[i * k + j] }
                grad[r * k + j] = Float(s)
            }
        }
        // Adam on the tangent gradient.
        let b1 = Double(config.beta1), b2 = Double(config.beta2), eps = Double(config.eps)
        var bc1 = 1.0, bc2 = 1.0
        for _ in 0..<t { bc1 *= b1; bc2 *= b2 }
        bc1 = 1 - bc1; bc2 = 1 - bc2
        var cols = [Double](repeating: 0, count: d * k)  // column-major copy for the QR
        for r in 0..<d {
            for j in 0..<k {
                let i = r * k + j, g = Double(grad[i])
                let mi = b1 * Double(m[i]) + (1 - b1) * g
                let vi = b2 * Double(v[i]) + (1 - b2) * g * g
                m[i] = Float(mi); v[i] = Float(vi)
                let step = Double(lr) * (mi / bc1) / ((vi / bc2).squareRoot() + eps)
                cols[j * d + r] = Double(basis[i]) - step
            }
        }
        orthonormalize(&cols, d: d, k: k)
        for r in 0..<d { for j in 0..<k { basis[r * k + j] = Float(cols[j * d + r]) } }
    }

    /// QR retraction of the column-major d×k `cols` onto orthonormal columns, keeping the
    /// orientation of each column (positive diagonal of R).
    static func orthonormalize(_ cols: inout [Double], d: Int, k: Int) {
        for j in 0..<k {
            for _ in 0..<2 {
                for i in 0..<j {
                    var dot = 0.0
                    for r in 0..<d { dot += cols[i * d + r] * cols[j * d + r] }
                    for r in 0..<d { cols[j * d + r] -= dot * cols[i * d + r] }
                }
            }
            var norm = 0.0
            for r in 0..<d { norm += cols[j * d + r] * cols[j * d + r] }
            norm = norm.squareRoot()
            for r in 0..<d { cols[j * d + r] /= norm }
        }
    }
}
