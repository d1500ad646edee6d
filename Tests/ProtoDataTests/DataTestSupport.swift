// Temporary folders and small corpora for the data tests.
import Foundation
import XCTest

func tempDir(_ name: String = #function) throws -> URL {
    let d = FileManager.default.temporaryDirectory
        .appendingPathComponent("protomodel-tests-\(getpid())-\(name.filter { $0.isLetter || $0.isNumber })")
    try? FileManager.default.removeItem(at: d)
    try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
    return d
}

/// A few thousand lines of varied text (deterministic).
func sampleCorpus(lines: Int = 3000) -> String {
    let words = ["the", "and", "of", "LORD", "said", "unto", "him", "shall", "be", "in", "God", "children",
                 "Israel", "land", "king", "house", "day", "man", "people", "thee", "thou", "came", "went", "out"]
    var s = "", x: UInt64 = 12345
    for l in 0..<lines {
        s += "  \(l % 40 + 1) "
        for _ in 0..<(6 + l % 9) {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            s += words[Int(x >> 33) % words.count] + (x & 0x700 == 0 ? ", " : " ")
        }
        s += "end.\n"
    }
    return s
}
