// The raw text a tokenizer is trained on: one file, or every regular file in a folder
// (sorted by name, concatenated).
import Foundation
import ProtoCore

public enum Corpus {
    /// Reads `path` (file or folder). Throws if nothing is there or it is empty.
    public static func read(_ path: String) throws -> [UInt8] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DataError.missing(path: path, fix: "give a text file or folder with --input (the default corpus comes from scripts/setup.sh)")
        }
        var out: [UInt8] = []
        if isDir.boolValue {
            guard let listed = try? FileManager.default.contentsOfDirectory(atPath: path) else {
                throw DataError.io(path: path, problem: "cannot list the folder: \(AtomicFile.explain(EACCES))")
            }
            let names = listed.filter { !$0.hasPrefix(".") }.sorted()
            for n in names {
                let p = (path as NSString).appendingPathComponent(n)
                var d: ObjCBool = false
                if FileManager.default.fileExists(atPath: p, isDirectory: &d), !d.boolValue {
                    out.append(contentsOf: try FileIO.read(URL(fileURLWithPath: p)))
                }
            }
        } else {
            out = [UInt8](try FileIO.read(URL(fileURLWithPath: path)))
        }
        guard !out.isEmpty else { throw DataError.empty(path: path, fix: "give a corpus with some text in it") }
        return out
    }

    /// Splits text into train and validation bytes by blocks: of every `period` blocks, the
    /// last goes to validation, so both splits span the whole corpus. Blocks are 100 lines
    /// when the corpus has at least 200·period lines; otherwise (one long line, as in
    /// text8-style corpora, or a short text) 20·period chunks of equal size, each ending at
    /// a whitespace byte where there is one, so words stay whole.
    public static func split(_ text: [UInt8], valEvery period: Int) -> (train: [UInt8], val: [UInt8]) {
        var train: [UInt8] = [], val: [UInt8] = []
        train.reserveCapacity(text.count)
        func add(_ block: Int, _ r: ClosedRange<Int>) {
            if period > 0 && block % period == period - 1 { val.append(contentsOf: text[r]) } else { train.append(contentsOf: text[r]) }
        }
        let lines = text.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        if lines >= 200 * max(1, period) {
            var line = 0, start = 0
            for i in 0..<text.count where text[i] == 0x0A || i == text.count - 1 {
                add(line / 100, start...i)
                start = i + 1; line += 1
            }
            return (train, val)
        }
        let units = 20 * max(1, period)
        let size = max(1, (text.count + units - 1) / units)
        var start = 0, block = 0
        while start < text.count {
            var end = min(text.count, start + size) - 1
            // Extend to the next whitespace (space, tab, CR, LF), at most one more chunk.
            while end < text.count - 1 && end < start + 2 * size && !(text[end] == 0x20 || text[end] == 0x0A || text[end] == 0x09 || text[end] == 0x0D) { end += 1 }
            add(block, start...end)
            start = end + 1; block += 1
        }
        return (train, val)
    }
}
