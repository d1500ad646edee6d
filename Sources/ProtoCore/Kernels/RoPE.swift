// Rotary position embedding on the q and k parts of the fused qkv activation
// (rotate-half pairing: channel i with i + hs/2 inside each head).
import CKernels
import Foundation

/// cos/sin tables (T, hs/2) for angles t · base^(−2i/hs).
public struct RoPETable {
    public let T: Int, half: Int
    let cosT: [Float], sinT: [Float]

    public init(T: Int, headSize: Int, base: Float) {
        precondition(headSize % 2 == 0, "RoPE needs an even head size, got \(headSize)")
        self.T = T; half = headSize / 2
        var c = [Float](repeating: 0, count: T * half), s = c
        for t in 0..<T {
            for i in 0..<half {
                let invFreq = pow(Double(base), -2 * Double(i) / Double(headSize))
                let a = Double(t) * invFreq
                c[t * half + i] = Float(cos(a)); s[t * half + i] = Float(sin(a))
            }
        }
        cosT = c; sinT = s
    }
}

/// Rotates q and k of qkv(B,T,3C) in place; `inverse` applies the transpose rotation,
/// which is the backward pass (rotations are orthogonal).
public func ropeApply(_ qkv: UnsafeMutablePointer<Float>, _ table: RoPETable,
                      _ B: Int, _ T: Int, _ C: Int, _ NH: Int, inverse: Bool = false) {
    let hs = C / NH, half = hs / 2
    table.cosT.withUnsafeBufferPointer { cp in
        table.sinT.withUnsafeBufferPointer { sp in
            let cosP = cp.baseAddress!, sinP = sp.baseAddress!
            let sign: Float = inverse ? -1 : 1, vector = VectorKernels.use
            Parallel.chunks(B * T, minPerChunk: 128) { lo, hi in
                if vector { pm_rope_rows(qkv, cosP, sinP, lo, hi, Int32(T), Int32(C), Int32(NH), sign); return }
                for n in lo..<hi {
                    let t = n % T
                    let cs = cosP + t * half, sn = sinP + t * half
                    for part in 0..<2 {  // q, then k
                        for h in 0..<NH {
                            let v = qkv + n * 3 * C + part * C + h * hs
                            for i in 0..<half {
                                let a = v[i], b = v[i + half], s = sign * sn[i]
                                v[i] = a * cs[i] - b * s
                                v[i + half] = b * cs[i] + a * s
                            }
                        }
                    }
                }
            }
        }
    }
}
