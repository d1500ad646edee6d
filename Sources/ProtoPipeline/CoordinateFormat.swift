// Number formats for the k coordinates a subspace message carries per token (SPEC §2,
// "stacked quantization"): fp32 (exact), bf16, and int8 / fp8 (e4m3) / int4 with one
// per-token scale, so a larger k fits in the same bytes. Token ids are never quantized.

/// How one row of k coordinates is stored on the wire.
public enum CoordinateFormat: String, CaseIterable, Codable, Sendable {
    case fp32, bf16, int8, fp8, int4

    /// Bytes one row of `k` values takes, per-token scale included.
    public func rowBytes(k: Int) -> Int {
        switch self {
        case .fp32: return 4 * k
        case .bf16: return 2 * k
        case .int8, .fp8: return 2 + k          // bf16 scale + one byte per value
        case .int4: return 2 + (k + 1) / 2      // bf16 scale + two values per byte
        }
    }

    /// Largest magnitude a scaled value may take (the scale maps the row's absmax onto it).
    private var qmax: Float {
        switch self {
        case .int8: return 127
        case .int4: return 7
        case .fp8: return 448
        default: return 1
        }
    }

    public var isExact: Bool { self == .fp32 }

    /// Writes `rows` rows of `k` values from `x` to `dst`, and overwrites `x` with the values
    /// the receiver will decode, so a sender can measure (and use) exactly what arrives.
    public func encode(_ x: UnsafeMutablePointer<Float>, rows: Int, k: Int, into dst: UnsafeMutableRawPointer) {
        switch self {
        case .fp32:
            dst.copyMemory(from: x, byteCount: 4 * rows * k)
        case .bf16:
            let h = dst.assumingMemoryBound(to: UInt16.self)
            for i in 0..<(rows * k) { h[i] = toBF16(x[i]); x[i] = fromBF16(h[i]) }
        case .int8, .fp8, .int4:
            let rb = rowBytes(k: k)
            for r in 0..<rows {
                let row = x + r * k, out = dst + r * rb
                var amax: Float = 0, finite = true
                for j in 0..<k { amax = max(amax, abs(row[j])); finite = finite && row[j].isFinite }
                guard finite else {
                    // A NaN scale makes the whole row decode to NaN, so the receiver's
                    // non-finite check sees it instead of a silently clipped value.
                    out.storeBytes(of: UInt16(0x7FC0), as: UInt16.self)
                    (out + 2).initializeMemory(as: UInt8.self, repeating: 0, count: rb - 2)
                    for j in 0..<k { row[j] = .nan }
                    continue
                }
                // The scale travels as bf16, rounded up so every scaled value stays within qmax.
                var sh = toBF16(amax / qmax)
                if fromBF16(sh) < amax / qmax { sh &+= 1 }
                out.storeBytes(of: sh, as: UInt16.self)
                let scale = fromBF16(sh), inv: Float = scale > 0 ? 1 / scale : 0
                let q = out + 2
                switch self {
                case .int8:
                    let v = q.assumingMemoryBound(to: Int8.self)
                    for j in 0..<k { v[j] = Int8(max(-127, min(127, (row[j] * inv).rounded()))); row[j] = Float(v[j]) * scale }
                case .fp8:
                    let v = q.assumingMemoryBound(to: UInt8.self)
                    for j in 0..<k { v[j] = FP8E4M3.encode(row[j] * inv); row[j] = FP8E4M3.decode(v[j]) * scale }
                default:  // int4: two's-complement nibbles, value j in the low nibble when j is even
                    let v = q.assumingMemoryBound(to: UInt8.self)
                    for b in 0..<((k + 1) / 2) { v[b] = 0 }
                    for j in 0..<k {
                        let n = Int8(max(-7, min(7, (row[j] * inv).rounded())))
                        v[j / 2] |= (UInt8(bitPattern: n) & 0x0F) << (j % 2 == 0 ? 0 : 4)
                        row[j] = Float(n) * scale
                    }
                }
            }
        }
    }

    /// Reads `rows` rows of `k` values written by `encode`.
    public func decode(_ src: UnsafeRawPointer, rows: Int, k: Int, into x: UnsafeMutablePointer<Float>) {
        switch self {
        case .fp32:
            UnsafeMutableRawPointer(x).copyMemory(from: src, byteCount: 4 * rows * k)
        case .bf16:
            let h = src.assumingMemoryBound(to: UInt16.self)
            for i in 0..<(rows * k) { x[i] = fromBF16(h[i]) }
        case .int8, .fp8, .int4:
            let rb = rowBytes(k: k)
            for r in 0..<rows {
                let row = x + r * k, inp = src + r * rb
                let scale = fromBF16(inp.loadUnaligned(as: UInt16.self))
                let q = inp + 2
                switch self {
                case .int8:
                    let v = q.assumingMemoryBound(to: Int8.self)
                    for j in 0..<k { row[j] = Float(v[j]) * scale }
                case .fp8:
                    let v = q.assumingMemoryBound(to: UInt8.self)
                    for j in 0..<k { row[j] = FP8E4M3.decode(v[j]) * scale }
                default:
                    let v = q.assumingMemoryBound(to: UInt8.self)
                    for j in 0..<k {
                        let nib = (v[j / 2] >> (j % 2 == 0 ? 0 : 4)) & 0x0F
                        row[j] = Float(Int8(bitPattern: nib << 4) >> 4) * scale  // sign-extend
                    }
                }
            }
        }
    }
}

/// OCP FP8 E4M3 ("e4m3fn"): 1 sign, 4 exponent (bias 7), 3 mantissa bits, no infinities,
/// largest finite 448; code 0x7F/0xFF is NaN. Encoding rounds to the nearest value (ties to
/// an even code) and saturates at ±448.
public enum FP8E4M3 {
    /// The 127 non-negative finite values, indexed by code 0x00...0x7E (increasing).
    static let positive: [Float] = (0..<127).map { c in
        let e = c >> 3, m = c & 7
        return e == 0 ? Float(m) / 8 * 0x1p-6 : (1 + Float(m) / 8) * Float(sign: .plus, exponent: e - 7, significand: 1)
    }

    public static func decode(_ code: UInt8) -> Float {
        let c = Int(code & 0x7F)
        if c == 0x7F { return .nan }
        return code & 0x80 != 0 ? -positive[c] : positive[c]
    }

    public static func encode(_ x: Float) -> UInt8 {
        if x.isNaN { return 0x7F }
        let sign: UInt8 = x.sign == .minus ? 0x80 : 0
        let a = abs(x)
        if a >= positive[126] { return sign | 126 }
        // Binary search for the first value ≥ a, then pick the nearer neighbour.
        var lo = 0, hi = 126
        while lo < hi { let mid = (lo + hi) / 2; if positive[mid] < a { lo = mid + 1 } else { hi = mid } }
        if lo == 0 { return sign }
        let below = positive[lo - 1], above = positive[lo]
        let pick: Int
        if a - below < above - a { pick = lo - 1 } else if a - below > above - a { pick = lo } else { pick = lo % 2 == 0 ? lo : lo - 1 }
        return sign | UInt8(pick)
    }
}
