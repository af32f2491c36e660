/// The HF byte-level BPE tokenizer against reference Qwen3 encodings (from /work/shared), the
/// Qwen3 chat template rendered with it, and the `tokenize` command.
module SimKO.Host.Tests.TokenizerTests

open System
open System.IO
open System.Text
open System.Text.Json.Nodes
open Expecto
open SimKO.Data.Tokenizers
open SimKO.Host.Commands

/// The folder holding SimKO.sln, found by walking up from the test binaries (None when the binaries
/// run outside the repository: nothing here may fail while the module loads).
let repoRoot =
    let rec up (d: DirectoryInfo) =
        if isNull d then None
        elif File.Exists(Path.Combine(d.FullName, "SimKO.sln")) then Some d.FullName
        else up d.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

/// ../shared beside the repository (where the Qwen3 fixture lives), or a path that names why not.
let sharedDir =
    match repoRoot with
    | Some root -> Path.GetFullPath(Path.Combine(root, "..", "shared"))
    | None -> sprintf "../shared (no SimKO.sln above %s)" AppContext.BaseDirectory
let fixtureDir = Path.Combine(sharedDir, "fixtures", "qwen3-tokenizer")
let referencePath = Path.Combine(fixtureDir, "reference-encodings.jsonl")

/// Runs the test only when the shared Qwen3 fixture is there.
let withFixture name (body: unit -> unit) =
    testCase name <| fun () ->
        if repoRoot.IsNone || not (Directory.Exists sharedDir) then
            skiptestf "%s is absent: the Qwen3 tokenizer fixture (../shared/fixtures/qwen3-tokenizer) is not available" sharedDir
        elif not (File.Exists referencePath) then
            skiptestf "%s is absent: the Qwen3 tokenizer fixture is not available" referencePath
        else body ()

let tokenizer = lazy (HfBpeTokenizer.FromFolder fixtureDir)

let references =
    lazy (
        File.ReadAllLines referencePath
        |> Array.mapi (fun i line ->
            let o = JsonNode.Parse(line)
            let text = o.["text"].GetValue<string>()
            let ids = o.["ids"].AsArray() |> Seq.map (fun n -> n.GetValue<int>()) |> Array.ofSeq
            i + 1, text, ids))

let private tempDir () =
    let d = Path.Combine(Path.GetTempPath(), $"simko-tok-{Guid.NewGuid():N}")
    Directory.CreateDirectory d |> ignore
    d

let tests =
    testSequenced <| testList "tokenizer" [
        withFixture "every reference line encodes to its ids and decodes back to its text" <| fun () ->
            let tok = tokenizer.Value
            let refs = references.Value
            let mismatches =
                refs |> Array.choose (fun (n, text, ids) ->
                    let got = tok.Encode text
                    if got <> ids then Some(sprintf "line %d: %A\n  expected %A\n  got      %A" n text ids got) else None)
            Expect.isEmpty mismatches (sprintf "%d of %d lines differ:\n%s" mismatches.Length refs.Length (String.Join("\n", Array.truncate 3 mismatches)))
            for n, text, ids in refs do
                // the tokenizer normalises to NFC (as Qwen's does), so decoding gives the NFC form
                Expect.equal (tok.Decode ids) (text.Normalize NormalizationForm.FormC) (sprintf "%s line %d decodes back" referencePath n)

        withFixture "special tokens in the text encode as single ids; eos, pad and vocabulary size" <| fun () ->
            let tok = tokenizer.Value
            Expect.equal (tok.Encode "<|im_start|>") [| 151644 |] "<|im_start|>"
            Expect.equal (tok.Encode "<|im_end|>") [| 151645 |] "<|im_end|>"
            Expect.equal (tok.Encode "<|endoftext|>") [| 151643 |] "<|endoftext|>"
            Expect.equal (tok.Encode "a<|im_end|>b").[1] 151645 "special token between letters"
            for KeyValue(content, id) in tok.AddedTokens do
                Expect.equal (tok.Encode content) [| id |] $"added token {content}"
            Expect.equal tok.EosId 151645 "eos is <|im_end|>"
            Expect.equal tok.PadId 151643 "pad is <|endoftext|>"
            Expect.equal tok.VocabSize 151669 "151,643 vocabulary entries and 26 added tokens"
            Expect.throwsT<ArgumentException> (fun () -> tok.Decode [ 151669 ] |> ignore) "id outside the vocabulary"

        withFixture "Qwen3's chat template (Jinja, in the sandbox) for one user message encodes with its special tokens" <| fun () ->
            let pool =
                try new SimKO.Data.Sandbox.SandboxPool(SimKO.Data.Sandbox.SandboxSettings(Workers = 1))
                with :? SimKO.Data.Sandbox.SandboxUnavailableException as e -> skiptestf "no sandbox here: %s" e.Message
            use _ = pool
            let template = SimKO.Data.Chat.ChatTemplate.FromFolder fixtureDir
            let p = template.Render(pool, [ SimKO.Data.Math.ChatMessage("user", "What is 2+2?") ])
            Expect.equal p "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n" "generation prompt, no system message (Qwen3's template adds none)"
            let ids = tokenizer.Value.Encode p
            Expect.equal ids.[0] 151644 "starts with <|im_start|>"
            Expect.equal (ids |> Array.filter ((=) 151645) |> Array.length) 1 "one <|im_end|>"
            Expect.equal (tokenizer.Value.Decode ids) p "round trip"

        withFixture "merges stored as \"a b\" strings load the same; Save copies the files; HfFolder loads it" <| fun () ->
            let dir = tempDir ()
            try
                tokenizer.Value.Save dir
                Expect.isTrue (File.Exists(Path.Combine(dir, "tokenizer.json")) && File.Exists(Path.Combine(dir, "tokenizer_config.json"))) "both files saved"
                let root = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "tokenizer.json")))
                let merges = root.["model"].["merges"].AsArray()
                let asStrings = JsonArray()
                for m in merges do
                    let pair = m.AsArray()
                    asStrings.Add(JsonValue.Create(pair.[0].GetValue<string>() + " " + pair.[1].GetValue<string>()))
                root.["model"].["merges"] <- asStrings
                File.WriteAllText(Path.Combine(dir, "tokenizer.json"), root.ToJsonString())
                let loaded = SimKO.Host.Checkpoints.HfFolder.LoadTokenizer dir
                Expect.isTrue (loaded :? HfBpeTokenizer) "HfFolder.LoadTokenizer gives the BPE tokenizer"
                for n, text, ids in references.Value |> Array.truncate 40 do
                    Expect.equal (loaded.Encode text) ids (sprintf "line %d with string merges" n)
            finally Directory.Delete(dir, true)

        withFixture "a malformed field names the file and the field" <| fun () ->
            let dir = tempDir ()
            try
                File.Copy(Path.Combine(fixtureDir, "tokenizer.json"), Path.Combine(dir, "tokenizer.json"))
                File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"pad_token": "<|endoftext|>"}""")
                let e = Expect.throwsC (fun () -> HfBpeTokenizer.FromFolder dir |> ignore) id
                Expect.stringContains e.Message "tokenizer_config.json" "names the file"
                Expect.stringContains e.Message "eos_token" "names the field"
            finally Directory.Delete(dir, true)

        withFixture "tokenize command writes {text, ids} lines and names a malformed line" <| fun () ->
            let tok = tokenizer.Value
            let input = "{\"text\": \"Hello, world!\"}\n\n{\"text\": \"你好，世界！今天天气很好。\"}\n"
            let out = new StringWriter()
            let n = TokenizeCommand.Tokenize(tok, new StringReader(input), out, "in.jsonl")
            Expect.equal n 2 "two lines written"
            let lines = out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)
            let ids0 = JsonNode.Parse(lines.[0]).["ids"].AsArray() |> Seq.map (fun x -> x.GetValue<int>()) |> Array.ofSeq
            Expect.equal ids0 [| 9707; 11; 1879; 0 |] "Hello, world!"
            Expect.equal (JsonNode.Parse(lines.[1]).["text"].GetValue<string>()) "你好，世界！今天天气很好。" "text kept"
            let bad = "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n"
            let e = Expect.throwsC (fun () -> TokenizeCommand.Tokenize(tok, new StringReader(bad), new StringWriter(), "in.jsonl") |> ignore) id
            Expect.stringContains e.Message "in.jsonl:2" "names line 2"
            Expect.stringContains e.Message "text" "names the field"
            let e2 = Expect.throwsC (fun () -> TokenizeCommand.Tokenize(tok, new StringReader("{\"text\": 1\n"), new StringWriter(), "in.jsonl") |> ignore) id
            Expect.stringContains e2.Message "in.jsonl:1" "names line 1"
    ]
