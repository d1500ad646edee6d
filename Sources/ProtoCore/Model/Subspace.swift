// The shared subspace of Protocol Models (SPEC §2): an orthonormal basis U (d×k) and a
// fixed high-rank token table E_fixed (V×d), both rebuilt from the model seed on every
// rank, so they cost no communication. An adaptive U (SPEC §2, way 1) and the learned
// per-boundary projectors (way 2) are bases that live in a parameter slot instead.
import Foundation

/// How the constraint "W writes only into span(U)" is kept (two different models).
public enum SubspaceMode: String, Codable, Sendable, CaseIterable {
    /// The layer owns W' (in×k) and computes y = x·W'·Uᵀ; the embedding owns a V×k table.
    case reparam
    /// The layer owns a full W (in×d); gradients are projected onto span(U) and
    /// W ← W·U·Uᵀ after every optimizer step.
    case projected
}

/// A basis trained on the Grassmann manifold (adaptive U, learned projectors): how often it
/// is stepped and its learning rate relative to the model's.
public struct ManifoldTraining: Codable, Equatable, Sendable {
    /// Update every N optimizer steps (gradients of the steps in between are dropped).
    public var every: Int = 1
    /// Learning rate = this × the model's scheduled learning rate.
    public var lrScale: Float = 1
    public init(every: Int = 1, lrScale: Float = 1) { self.every = every; self.lrScale = lrScale }
}

/// The subspace part of a model's shape.
public struct SubspaceConfig: Codable, Equatable, Sendable {
    /// k: coordinates per token on the wire (1 ≤ k < d).
    public var rank: Int
    public var mode: SubspaceMode
    /// Trained U (reparam mode only); nil keeps the seeded U fixed.
    public var adaptive: ManifoldTraining?
    public init(rank: Int, mode: SubspaceMode, adaptive: ManifoldTraining? = nil) {
        self.rank = rank; self.mode = mode; self.adaptive = adaptive
    }
}

/// E_fixed (V, d): a seeded Gaussian table every stage can rebuild, never trained.
public final class FixedEmbedding: @unchecked Sendable {
    public let vocabSize: Int
    public let d: Int
    public let table: FloatBuffer

    public init(config: ModelConfig) {
        vocabSize = config.vocabSize; d = config.dModel
        table = FloatBuffer(count: vocabSize * d)
        var rng = SplitMix64(seed: SplitMix64.derive(config.seed, "subspace.E_fixed"))
        rng.fillNormal(table.ptr, vocabSize * d, std: config.fixedEmbeddingStd ?? config.initStd)
    }

    /// x (n, d) += sign · E_fixed[ids].
    public func add(_ x: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, n: Int, sign: Float = 1) {
        let e = table.ptr, d = d
        Parallel.chunks(n, minPerChunk: 256) { lo, hi in
            for i in lo..<hi {
                let src = e + Int(ids[i]) * d, dst = x + i * d
                for c in 0..<d { dst[c] += sign * src[c] }
            }
        }
    }
}

/// An orthonormal basis (d, k), row-major, in its own buffer or in a parameter slot.
public final class Basis: @unchecked Sendable {
    public let d: Int
    public let k: Int
    public let ptr: UnsafeMutablePointer<Float>
    private let owned: FloatBuffer?

    /// A basis over memory someone else owns (a parameter tensor).
    public init(d: Int, k: Int, at ptr: UnsafeMutablePointer<Float>) { self.d = d; self.k = k; self.ptr = ptr; owned = nil }

    /// A basis in its own buffer, seeded like the parameter `name`.
    public init(d: Int, k: Int, seed: UInt64, name: String) {
        self.d = d; self.k = k
        let b = FloatBuffer(count: d * k)
        owned = b; ptr = b.ptr
        Basis.seed(b.ptr, d: d, k: k, seed: seed, name: name)
    }

    /// Writes the seeded orthonormal basis of `name`: Gram–Schmidt (applied twice, in Double)
    /// on a Gaussian d×k matrix from the seed derived from `name`.
    public static func seed(_ out: UnsafeMutablePointer<Float>, d: Int, k: Int, seed: UInt64, name: String) {
        var rng = SplitMix64(seed: SplitMix64.derive(seed, name))
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
        for r in 0..<d { for j in 0..<k { out[r * k + j] = Float(cols[j][r]) } }
    }

    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: ptr, count: d * k)) }

    /// out (rows, k) = x (rows, d) · U.
    public func coordinates(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        BLAS.gemmParallel(M: rows, N: k, K: d, A: x, lda: d, B: ptr, ldb: k, C: out, ldc: k)
    }

    /// out (rows, d) = c (rows, k) · Uᵀ, or += when `accumulate`.
    public func expand(_ c: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        BLAS.gemmParallel(transB: true, M: rows, N: d, K: k, A: c, lda: k, B: ptr, ldb: k,
                          beta: accumulate ? 1 : 0, C: out, ldc: d)
    }

    /// g (d, k) += aᵀ (rows, d)ᵀ · c (rows, k): the gradient of a basis used as a·U or c·Uᵀ.
    public func accumulateOuter(_ a: UnsafePointer<Float>, _ c: UnsafePointer<Float>, rows: Int, into g: UnsafeMutablePointer<Float>) {
        BLAS.gemmParallel(transA: true, M: d, N: k, K: rows, A: a, lda: d, B: c, ldb: k, beta: 1, C: g, ldc: k)
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

    /// ‖UᵀU − I‖_max: how far the columns are from orthonormal.
    public func orthonormalityError() -> Double {
        var worst = 0.0
        for i in 0..<k {
            for j in 0..<k {
                var dot = 0.0
                for r in 0..<d { dot += Double(ptr[r * k + i]) * Double(ptr[r * k + j]) }
                worst = max(worst, abs(dot - (i == j ? 1 : 0)))
            }
        }
        return worst
    }

    /// 64-bit FNV-1a over the basis bytes: equal on two ranks iff their copies are bit-identical.
    public var hash: UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for i in 0..<(d * k) {
            var b = ptr[i].bitPattern
            for _ in 0..<4 { h = (h ^ UInt64(b & 0xFF)) &* 0x100_0000_01B3; b >>= 8 }
        }
        return h
    }
}

/// What the subspace model and its wire share: U and E_fixed.
public final class Subspace: @unchecked Sendable {
    public let basis: Basis
    public let fixed: FixedEmbedding
    public var d: Int { basis.d }
    public var k: Int { basis.k }
    public var vocabSize: Int { fixed.vocabSize }
    /// E_fixed (V, d).
    public var fixedEmbedding: FloatBuffer { fixed.table }

    public init(basis: Basis, fixed: FixedEmbedding) { self.basis = basis; self.fixed = fixed }

    /// The fixed (seeded) U of `config` and its E_fixed.
    public convenience init(config: ModelConfig) {
        guard let s = config.subspace else { preconditionFailure("Subspace needs a config with a subspace") }
        self.init(basis: Basis(d: config.dModel, k: s.rank, seed: config.seed, name: Subspace.basisName),
                  fixed: FixedEmbedding(config: config))
    }

    /// The parameter name of U (and the name its seed is derived from).
    public static let basisName = "subspace.U"

    public func coordinates(_ x: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
        basis.coordinates(x, rows: rows, into: out)
    }
    public func expand(_ c: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, accumulate: Bool) {
        basis.expand(c, rows: rows, into: out, accumulate: accumulate)
    }
    /// x (n, d) += sign · E_fixed[ids].
    public func addFixed(_ x: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, n: Int, sign: Float = 1) {
        fixed.add(x, ids: ids, n: n, sign: sign)
    }
    public func project(_ w: UnsafeMutablePointer<Float>, rows: Int, scratch: UnsafeMutablePointer<Float>) {
        basis.project(w, rows: rows, scratch: scratch)
    }
    public func leakage(_ w: UnsafePointer<Float>, rows: Int) -> Double { basis.leakage(w, rows: rows) }
}
