// Softmax cross-entropy over the LM head's logits.
import Foundation

/// losses(N) = −log softmax(logits)[target]; lse(N) keeps each row's log-sum-exp for backward.
/// Returns the mean loss over the N rows.
@discardableResult
public func crossEntropyForward(_ losses: UnsafeMutablePointer<Float>, _ lse: UnsafeMutablePointer<Float>,
                                _ logits: UnsafePointer<Float>, _ targets: UnsafePointer<Int32>,
                                _ N: Int, _ V: Int) -> Float {
    Parallel.chunks(N, minPerChunk: 64) { lo, hi in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 256) { tmp in
            for i in lo..<hi {
                let row = logits + i * V
                let mx = maxValue(row, V)
                let l = mx + logf(sumExpShifted(row, V, shift: mx, tmp: tmp.baseAddress!))
                lse[i] = l
                losses[i] = l - row[Int(targets[i])]
            }
        }
    }
    var total: Double = 0
    for i in 0..<N { total += Double(losses[i]) }
    return Float(total / Double(N))
}

/// dlogits(N,V) = (softmax(logits) − onehot(target)) · scale, overwriting.
public func crossEntropyBackward(_ dlogits: UnsafeMutablePointer<Float>, _ logits: UnsafePointer<Float>,
                                 _ lse: UnsafePointer<Float>, _ targets: UnsafePointer<Int32>,
                                 _ N: Int, _ V: Int, scale: Float) {
    Parallel.chunks(N, minPerChunk: 64) { lo, hi in
        for i in lo..<hi {
            let row = logits + i * V, d = dlogits + i * V
            let l = lse[i]
            expShifted(d, row, V, shift: l, scale: scale)
            d[Int(targets[i])] -= scale
        }
    }
}
