// The wire codecs beyond dense fp32: bf16, int8 (per-token absmax), top-k with indices,
// and the exact Protocol Models subspace codec (SPEC §2). Each reports the bytes it puts
// on the wire (WireBuffer.count) and its reconstruction error, measured at the sender by
// decoding exactly what it sent.
import Foundation
import ProtoCore

/// Σ‖x̂ − x‖² and Σ‖x‖² per direction, accumulated over a step's messages.
public struct WireErrorStats: Codable, Sendable, Equatable {
    public var errSqForward = 0.0, normSqForward = 0.0
    public var errSqBackward = 0.0, normSqBackward = 0.0
    public init() {}
    public var relativeForward: Double { normSqForward > 0 ? (errSqForward / normSqForward).squareRoot() : 0 }
    public var relativeBackward: Double { normSqBackward > 0 ? (errSqBackward / normSqBackward).squareRoot() : 0 }
}

/// Float ↔ bfloat16 (round to nearest even; NaN stays NaN).
@inline(__always) func toBF16(_ x: Float) -> UInt16 {
    let b = x.bitPattern
    if x.isNaN { return UInt16(b >> 16) | 0x40 }
    return UInt16((b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
}
@inline(__always) func fromBF16(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

/// Accumulates Σ(a−b)² and Σa² over n values.
@inline(__always) func addError(_ stats: inout (Double, Double), _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
    var e: Double = 0, s: Double = 0
    var i = 0
    while i < n {  // Float partial sums over short runs, Double across them
        var pe: Float = 0, ps: Float = 0
        for j in i..<min(n, i + 4096) { let d = a[j] - b[j]; pe += d * d; ps += a[j] * a[j] }
        e += Double(pe); s += Double(ps); i += 4096
    }
    stats.0 += e; stats.1 += s
}

/// A lossy codec that encodes activations and gradients the same way: it implements
/// `encode`/`decode` once and gets the four wire methods, with the error bookkeeping.
public protocol SymmetricCodec: WireCodec {
    /// Encodes n×d values, adding Σ(x̂−x)² and Σx² to `e`.
    func encode(_ x: UnsafePointer<Float>, _ n: Int, _ d: Int, _ e: inout (Double, Double)) -> WireBuffer
    func decode(_ b: WireBuffer, _ x: UnsafeMutablePointer<Float>, _ n: Int, _ d: Int, _ what: String) throws
}

extension SymmetricCodec {
    public var carriesIds: Bool { false }
    public func encodeForward(_ x: UnsafePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) -> WireBuffer {
        encode(x, n, d, counting: \.errSqForward, \.normSqForward)
    }
    public func encodeBackward(_ g: UnsafePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) -> WireBuffer {
        encode(g, n, d, counting: \.errSqBackward, \.normSqBackward)
    }
    public func decodeForward(_ b: WireBuffer, into x: UnsafeMutablePointer<Float>, ids: UnsafeMutablePointer<Int32>, n: Int, d: Int) throws {
        try decode(b, x, n, d, "forward")
    }
    public func decodeBackward(_ b: WireBuffer, into g: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) throws {
        try decode(b, g, n, d, "backward")
    }

    /// Encodes and adds the error to one direction's pair of accumulators.
    private func encode(_ x: UnsafePointer<Float>, _ n: Int, _ d: Int, counting err: WritableKeyPath<WireErrorStats, Double>,
                        _ norm: WritableKeyPath<WireErrorStats, Double>) -> WireBuffer {
        var e = (errorStats[keyPath: err], errorStats[keyPath: norm])
        defer { errorStats[keyPath: err] = e.0; errorStats[keyPath: norm] = e.1 }
        return encode(x, n, d, &e)
    }
}

// MARK: bf16

/// Dense bfloat16: 2·d bytes per token each way.
public final class BF16Codec: SymmetricCodec {
    public var errorStats = WireErrorStats()
    public init() {}
    public var name: String { "bf16" }

    public func encode(_ x: UnsafePointer<Float>, _ n: Int, _ d: Int, _ e: inout (Double, Double)) -> WireBuffer {
        let count = n * d
        let b = WireBuffer(payloadBytes: 2 * count)
        let out = b.payload.assumingMemoryBound(to: UInt16.self)
        var err: Float = 0, norm: Float = 0
        for i in 0..<count {
            let h = toBF16(x[i]); out[i] = h
            let d = fromBF16(h) - x[i]; err += d * d; norm += x[i] * x[i]
        }
        e.0 += Double(err); e.1 += Double(norm)
        return b
    }
    public func decode(_ b: WireBuffer, _ x: UnsafeMutablePointer<Float>, _ n: Int, _ d: Int, _ what: String) throws {
        let count = n * d
        try expectPayload(b, 2 * count, what)
        let h = b.payload.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { x[i] = fromBF16(h[i]) }
    }
}

// MARK: int8

/// Per-token absmax int8: one fp32 scale and d int8 values per token (d + 4 bytes).
public final class Int8Codec: SymmetricCodec {
    public var errorStats = WireErrorStats()
    public init() {}
    public var name: String { "int8" }

    public func encode(_ x: UnsafePointer<Float>, _ n: Int, _ d: Int, _ e: inout (Double, Double)) -> WireBuffer {
        let b = WireBuffer(payloadBytes: n * (d + 4))
        let scales = b.payload.assumingMemoryBound(to: Float.self)
        let q = (b.payload + 4 * n).assumingMemoryBound(to: Int8.self)
        var err: Float = 0, norm: Float = 0
        for i in 0..<n {
            let row = x + i * d
            var amax: Float = 0, finite = true
            for c in 0..<d { amax = max(amax, abs(row[c])); finite = finite && row[c].isFinite }
            // A non-finite value makes the row's scale NaN: the receiver decodes NaN and its
            // non-finite check reports it, instead of a silently clipped value.
            let scale = finite ? amax / 127 : .nan, inv: Float = finite && amax > 0 ? 127 / amax : 0
            scales[i] = scale
            for c in 0..<d {
                let v = Int8(max(-127, min(127, (row[c] * inv).rounded())))
                q[i * d + c] = v
                let diff = Float(v) * scale - row[c]; err += diff * diff; norm += row[c] * row[c]
            }
        }
        e.0 += Double(err); e.1 += Double(norm)
        return b
    }
    public func decode(_ b: WireBuffer, _ x: UnsafeMutablePointer<Float>, _ n: Int, _ d: Int, _ what: String) throws {
        try expectPayload(b, n * (d + 4), what)
        let scales = b.payload.assumingMemoryBound(to: Float.self)
        let q = (b.payload + 4 * n).assumingMemoryBound(to: Int8.self)
        for i in 0..<n { for c in 0..<d { x[i * d + c] = Float(q[i * d + c]) * scales[i] } }
    }
}

// MARK: int4 / fp8 (and any coordinate format) on dense rows

/// Dense activations and gradients stored per token in a `CoordinateFormat` with a bf16
/// per-token scale: int4 (d/2 + 2 bytes per token) or fp8 e4m3 (d + 2). The same stacked
/// quantization the subspace codec applies to its coordinates, on all d values.
public final class QuantizedCodec: SymmetricCodec {
    public var errorStats = WireErrorStats()
    public let format: CoordinateFormat
    private var work = FloatBuffer(count: 1)
    public init(format: CoordinateFormat) { self.format = format }
    public var name: String { format.rawValue }

    public func encode(_ x: UnsafePointer<Float>, _ n: Int, _ d: Int, _ e: inout (Double, Double)) -> WireBuffer {
        if work.count < n * d { work = FloatBuffer(count: n * d) }
        work.ptr.update(from: x, count: n * d)
        let b = WireBuffer(payloadBytes: n * format.rowBytes(k: d))
        format.encode(work.ptr, rows: n, k: d, into: b.payload)
        addError(&e, x, work.ptr, n * d)
        return b
    }
    public func decode(_ b: WireBuffer, _ x: UnsafeMutablePointer<Float>, _ n: Int, _ d: Int, _ what: String) throws {
        try expectPayload(b, n * format.rowBytes(k: d), what)
        format.decode(b.payload, rows: n, k: d, into: x)
    }
}

// MARK: top-k

/// Per token, the K = ⌈fraction·d⌉ largest-magnitude values (fp32) and their column
/// indices (uint16): 6·K bytes per token. Everything else arrives as zero.
public final class TopKCodec: SymmetricCodec {
    public var errorStats = WireErrorStats()
    public let fraction: Double
    public init(fraction: Double) { self.fraction = fraction }
    public var name: String { "topk" }
    public func kept(d: Int) -> Int { min(d, max(1, Int((fraction * Double(d)).rounded(.up)))) }

    public func encode(_ x: UnsafePointer<Float>, _ n: Int, _ d: Int, _ e: inout (Double, Double)) -> WireBuffer {
        let K = kept(d: d)
        let b = WireBuffer(payloadBytes: n * K * 6)
        let vals = b.payload.assumingMemoryBound(to: Float.self)
        let idx = (b.payload + 4 * n * K).assumingMemoryBound(to: UInt16.self)
        var order = [Int](repeating: 0, count: d)
        var err = 0.0, norm = 0.0
        for i in 0..<n {
            let row = x + i * d
            for c in 0..<d { order[c] = c }
            // Largest magnitudes first; ties broken by column so every run picks the same.
            order.sort { let a = abs(row[$0]), b = abs(row[$1]); return a != b ? a > b : $0 < $1 }
            for j in 0..<K { vals[i * K + j] = row[order[j]]; idx[i * K + j] = UInt16(order[j]) }
            var dropped: Float = 0, all: Float = 0
            for c in 0..<d { all += row[c] * row[c] }
            for j in K..<d { dropped += row[order[j]] * row[order[j]] }
            err += Double(dropped); norm += Double(all)
        }
        e.0 += err; e.1 += norm
        return b
    }
    public func decode(_ b: WireBuffer, _ x: UnsafeMutablePointer<Float>, _ n: Int, _ d: Int, _ what: String) throws {
        let K = kept(d: d)
        try expectPayload(b, n * K * 6, what)
        let vals = b.payload.assumingMemoryBound(to: Float.self)
        let idx = (b.payload + 4 * n * K).assumingMemoryBound(to: UInt16.self)
        x.initialize(repeating: 0, count: n * d)
        for i in 0..<n {
            for j in 0..<K {
                let c = Int(idx[i * K + j])
                guard c < d else { throw LinkError("topk codec: \(what) message names column \(c) of a width-\(d) activation") }
                x[i * d + c] = vals[i * K + j]
            }
        }
    }
}

// MARK: subspace

/// The Protocol Models wire. Forward: token ids (uint16 when V ≤ 65536) and the
/// coordinates C = (X − E_fixed[ids])·U; the receiver rebuilds X = C·Uᵀ + E_fixed[ids].
/// Backward: G·U; the receiver expands it with Uᵀ. Coordinates travel in `format` (fp32 is
/// exact; bf16, int8, fp8 and int4 are lossy, the last three with a per-token scale). The
/// error is measured by rebuilding exactly what the receiver will.
///
/// The shared-subspace model uses one U on both sides of every boundary; a projector model
/// uses the projector of the boundary it sends over (`output`) and of the one it receives
/// over (`input`), whose stream is exactly E_fixed + C·Aᵀ by construction.
public final class SubspaceCodec: WireCodec {
    public var errorStats = WireErrorStats()
    public let fixed: FixedEmbedding
    /// Basis of the boundary after this stage (forward sends, backward receives).
    public let output: Basis?
    /// Basis of the boundary before this stage (forward receives, backward sends).
    public let input: Basis?
    /// Format of the forward coordinates (activations).
    public let format: CoordinateFormat
    /// Format of the backward coordinates (gradients).
    public let gradFormat: CoordinateFormat
    public let k: Int
    private var work = FloatBuffer(count: 1)    // (n, d)
    private var coords = FloatBuffer(count: 1)  // (n, k)

    /// `gradFormat` nil: the gradients travel in `format` too.
    public init(fixed: FixedEmbedding, input: Basis?, output: Basis?, format: CoordinateFormat = .fp32,
                gradFormat: CoordinateFormat? = nil) {
        precondition(input != nil || output != nil, "a subspace codec needs a basis")
        self.fixed = fixed; self.input = input; self.output = output; self.format = format
        self.gradFormat = gradFormat ?? format
        k = (input ?? output)!.k
    }
    /// The shared-subspace wire: U on both sides.
    public convenience init(subspace: Subspace, format: CoordinateFormat = .fp32, gradFormat: CoordinateFormat? = nil) {
        self.init(fixed: subspace.fixed, input: subspace.basis, output: subspace.basis, format: format, gradFormat: gradFormat)
    }
    public var name: String {
        if gradFormat != format { return "subspace-\(format.rawValue)/\(gradFormat.rawValue)" }
        return format == .fp32 ? "subspace" : "subspace-\(format.rawValue)"
    }
    public var carriesIds: Bool { true }

    private var vocabSize: Int { fixed.vocabSize }
    private var idBytes: Int { vocabSize <= 65536 ? 2 : 4 }
    private func idsPayload(_ n: Int) -> Int { (n * idBytes + 3) & ~3 }
    /// Payload bytes of one forward message of n tokens.
    public func forwardBytes(n: Int) -> Int { idsPayload(n) + n * format.rowBytes(k: k) }
    public func backwardBytes(n: Int) -> Int { n * gradFormat.rowBytes(k: k) }

    private func ensure(_ n: Int, _ d: Int) {
        if work.count < n * d { work = FloatBuffer(count: n * d) }
        if coords.count < n * k { coords = FloatBuffer(count: n * k) }
    }
    private func basis(_ b: Basis?, _ what: String) -> Basis {
        guard let b else { preconditionFailure("subspace codec: this stage has no boundary to \(what)") }
        return b
    }

    public func encodeForward(_ x: UnsafePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) -> WireBuffer {
        let u = basis(output, "send activations over")
        precondition(d == u.d, "subspace codec built for d=\(u.d), got \(d)")
        ensure(n, d)
        work.ptr.update(from: x, count: n * d)
        fixed.add(work.ptr, ids: ids, n: n, sign: -1)
        u.coordinates(work.ptr, rows: n, into: coords.ptr)
        let b = WireBuffer(payloadBytes: forwardBytes(n: n))
        if idBytes == 2 {
            let out = b.payload.assumingMemoryBound(to: UInt16.self)
            for i in 0..<n { out[i] = UInt16(truncatingIfNeeded: ids[i]) }
        } else {
            b.payload.copyMemory(from: ids, byteCount: 4 * n)
        }
        format.encode(coords.ptr, rows: n, k: k, into: b.payload + idsPayload(n))
        // Rebuild as the receiver will and measure the error against what was sent.
        u.expand(coords.ptr, rows: n, into: work.ptr, accumulate: false)
        fixed.add(work.ptr, ids: ids, n: n)
        var e = (errorStats.errSqForward, errorStats.normSqForward)
        addError(&e, x, work.ptr, n * d)
        (errorStats.errSqForward, errorStats.normSqForward) = e
        return b
    }

    public func decodeForward(_ b: WireBuffer, into x: UnsafeMutablePointer<Float>, ids: UnsafeMutablePointer<Int32>, n: Int, d: Int) throws {
        let u = basis(input, "receive activations over")
        try expectPayload(b, forwardBytes(n: n), "forward")
        ensure(n, d)
        if idBytes == 2 {
            let src = b.payload.assumingMemoryBound(to: UInt16.self)
            for i in 0..<n { ids[i] = Int32(src[i]) }
        } else {
            UnsafeMutableRawPointer(ids).copyMemory(from: b.payload, byteCount: 4 * n)
        }
        for i in 0..<n where ids[i] < 0 || Int(ids[i]) >= vocabSize {
            throw LinkError("subspace codec: forward message carries token id \(ids[i]) outside the vocabulary (\(vocabSize))")
        }
        format.decode(b.payload + idsPayload(n), rows: n, k: k, into: coords.ptr)
        u.expand(coords.ptr, rows: n, into: x, accumulate: false)
        fixed.add(x, ids: UnsafePointer(ids), n: n)
    }

    public func encodeBackward(_ g: UnsafePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) -> WireBuffer {
        let u = basis(input, "send gradients over")
        ensure(n, d)
        u.coordinates(g, rows: n, into: coords.ptr)
        let b = WireBuffer(payloadBytes: backwardBytes(n: n))
        if gradFormat.isExact {
            gradFormat.encode(coords.ptr, rows: n, k: k, into: b.payload)
        } else {
            // Lossy coordinates: U is orthonormal, so the error of the receiver's G·U·Uᵀ is
            // the error of the coordinates themselves.
            let nk = n * k
            work.ptr.update(from: coords.ptr, count: nk)
            gradFormat.encode(coords.ptr, rows: n, k: k, into: b.payload)
            var e = (errorStats.errSqBackward, errorStats.normSqBackward)
            addError(&e, work.ptr, coords.ptr, nk)
            (errorStats.errSqBackward, errorStats.normSqBackward) = e
        }
        return b
    }

    public func decodeBackward(_ b: WireBuffer, into g: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>, n: Int, d: Int) throws {
        let u = basis(output, "receive gradients over")
        try expectPayload(b, backwardBytes(n: n), "backward")
        ensure(n, d)
        gradFormat.decode(b.payload, rows: n, k: k, into: coords.ptr)
        u.expand(coords.ptr, rows: n, into: g, accumulate: false)
    }
}
