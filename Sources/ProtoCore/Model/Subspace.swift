// The shared subspace of Protocol Models (SPEC §2): an orthonormal basis U (d×k) and a
// fixed high-rank token table E_fixed (V×d), both rebuilt from the model seed on every
// rank, so they cost no communication.
import Foundation

/// How the constraint "W writes only into span(U)" is kept (two different models).
public enum SubspaceMode: String, Codable, Sendable, CaseIterable {
    /// The layer owns W' (in×k) and computes y = x·W'·Uᵀ; the embedding owns a V×k table.
    case reparam
    /// The layer owns a full W (in×d); gradients are projected onto span(U) and
    /// W ← W·U·Uᵀ after every optimizer step.
    case projected
}

/// The subspace part of a model's shape.
public struct SubspaceConfig: Codable, Equatable, Sendable {
    /// k: coordinates per token on the wire (1 ≤ k < d).
    public var rank: Int
    public var mode: SubspaceMode
    public init(rank: Int, mode: SubspaceMode) { self.rank = rank; self.mode = mode }
}

public final class Subspace: @unchecked Sendable {
    public let d: Int
    public let k: Int
    public let vocabSize: Int
    /// U (d, k), row-major, orthonormal columns.
    public let basis: FloatBuffer
    /// E_fixed (V, d): never trained.
    public let fixedEmbedding: FloatBuffer

    public init(config: ModelConfig) {
        guard let s = config.subspace else { preconditionFailure("Subspace needs a config with a subspace") }
        d = config.dModel; k = s.rank; vocabSize = config.vocabSize
        basis = FloatBuffer(count: d * k)
        fixedEmbedding = FloatBuffer(count: vocabSize * d)
        // U: Gram–Schmidt (applied twice, in Double) on a seeded Gaussian d×k matrix.
        var rng = SplitMix64(seed: SplitMix64.derive(config.seed, "subspace.U"))
        let g = FloatBuffer(count: d * k)
        rng.fillNormal(g.ptr, d * k, std: 1)
        var cols = (0..<k).map { j in (0..<d).map { Double(g.ptr[$0 * k + j]) } }
        for j in 0..<k {
            for _ in 0..<2 {
                for i in 0..<j {
                    var dot = 0.0
                    for r in 0..<d { dot += cols[i][r] * cols[j][r] }
                    for r in 0..<d { cols[j][r] -= dot * cols[i][r] }
                }
            }
            let norm = cols[j].reduce(0) { $0 + $1 * $1 }.squareRoot()
            for r in 0..<d { cols[j][r] /= norm }
        }
        for r in 0..<d { for j in 0..<k { basis.ptr[r * k + j] = Float(cols[j][r]) } }
        var erng = SplitMix64(seed: SplitMix64.derive(config.seed, "subspace.E_fixed"))
        erng.fillNormal(fixedEmbedding.ptr, vocabSize * d, std: config.initStd)
    }

    /// out (rows, k) = x (rows, d) · U.
    public func coordinates(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        BLAS.gemmParallel(M: rows, N: k, K: d, A: x, lda: d, B: basis.ptr, ldb: k, C: out, ldc: k)
    }

    /// out (rows, d) = c (rows, k) · Uᵀ, or += when `accumulate`.
    public func expand(_ c: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        BLAS.gemmParallel(transB: true, M: rows, N: d, K: k, A: c, lda: k, B: basis.ptr, ldb: k,
                          beta: accumulate ? 1 : 0, C: out, ldc: d)
    }

    /// x (n, d) += sign · E_fixed[ids].
    public func addFixed(_ x: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, n: Int, sign: Float = 1) {
        let e = fixedEmbedding.ptr, d = d
        Parallel.chunks(n, minPerChunk: 256) { lo, hi in
            for i in lo..<hi {
                let src = e + Int(ids[i]) * d, dst = x + i * d
                for c in 0..<d { dst[c] += sign * src[c] }
            }
        }
    }

    /// w (rows, d) ← w · U · Uᵀ; `scratch` holds rows·k floats.
    public func project(_ w: UnsafeMutablePointer<Float>, rows: Int, scratch: UnsafeMutablePointer<Float>) {
        coordinates(w, rows: rows, into: scratch)
        expand(scratch, rows: rows, into: w, accumulate: false)
    }

    /// ‖w − w·U·Uᵀ‖ / ‖w‖ for w (rows, d): 0 when w writes only into span(U).
    public func leakage(_ w: UnsafePointer<Float>, rows: Int) -> Double {
        let c = FloatBuffer(count: rows * k), back = FloatBuffer(count: rows * d)
        coordinates(w, rows: rows, into: c.ptr)
        expand(c.ptr, rows: rows, into: back.ptr, accumulate: false)
        var diff = 0.0, norm = 0.0
        for i in 0..<(rows * d) {
            let a = Double(w[i]), b = Double(back.ptr[i])
            diff += (a - b) * (a - b); norm += a * a
        }
        return norm > 0 ? (diff / norm).squareRoot() : 0
    }
}
