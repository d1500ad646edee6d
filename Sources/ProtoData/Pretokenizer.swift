// Splits bytes into chunks that BPE merges never cross (words with their leading space,
// digit runs, punctuation runs, whitespace runs). The chunks partition the input exactly,
// so decoding the tokens of all chunks gives back every byte.

enum ByteClass: UInt8 { case letter, digit, space, newline, punct }

@inline(__always)
func byteClass(_ b: UInt8) -> ByteClass {
    switch b {
    case 0x41...0x5A, 0x61...0x7A, 0x80...0xFF: return .letter   // non-ASCII bytes group with letters
    case 0x30...0x39: return .digit
    case 0x20: return .space
    case 0x0A, 0x0D, 0x09, 0x0B, 0x0C: return .newline
    default: return .punct
    }
}

/// Calls `body` with each chunk's byte range, in order.
func forEachChunk(_ b: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) -> Void) {
    let n = b.count
    var i = 0
    while i < n {
        let s = i
        if b[i] == 0x20, i + 1 < n, case let c = byteClass(b[i + 1]), c != .space, c != .newline { i += 1 }
        let c = byteClass(b[i])
        if c == .space {
            while i < n && b[i] == 0x20 { i += 1 }
            // Leave the last space of a run to the word that follows it.
            if i < n, i - s > 1, case let nc = byteClass(b[i]), nc != .newline { i -= 1 }
        } else {
            i += 1
            while i < n && byteClass(b[i]) == c { i += 1 }
        }
        body(s..<i)
    }
}
