/// Tokenizers: the Qwen3 BPE reproduces an independent implementation's ids exactly; the
/// character tokenizer and the chat templates.
module SimKO.Host.Tests.TokenizerTests

open System
open System.IO
open System.Text
open System.Text.Json
open Expecto
open SimKO.Data.Tokenizers
open SimKO.Host.Tests.Helpers

let private fixture = sharedDir |> Option.map (fun s -> Path.Combine(s, "fixtures", "qwen3-tokenizer"))

let private qwen3 = lazy (BpeTokenizer.FromFolder fixture.Value)

let private withQwen3 f =
    match fixture with
    | Some d when Directory.Exists d -> f (qwen3.Force())
    | _ -> skiptest "shared/fixtures/qwen3-tokenizer not found beside the repository"

let private references () =
    File.ReadLines(Path.Combine(fixture.Value, "reference-encodings.jsonl"))
    |> Seq.filter (fun l -> l.Trim() <> "")
    |> Seq.map (fun l ->
        use d = JsonDocument.Parse l
        d.RootElement.GetProperty("text").GetString(), [| for x in d.RootElement.GetProperty("ids").EnumerateArray() -> x.GetInt32() |])
    |> Seq.toArray

/// A tiny byte-level BPE file where ignore_merges decides the answer: "abc" is a vocab entry,
/// but the merges alone give "a" + "bc".
let private ignoreMergesJson (ignore: bool) =
    sprintf """{"added_tokens":[{"id":6,"content":"<|end|>","special":true}],
"normalizer":null,
"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":" ?\\p{L}+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]},
"model":{"type":"BPE","ignore_merges":%s,"vocab":{"a":0,"b":1,"c":2,"ab":3,"bc":4,"abc":5,"Ġ":7,"Ġa":8},"merges":["b c","Ġ a","a b"]}}""" (if ignore then "true" else "false")

let tests =
    testList "tokenizers" [
        test "the Qwen3 tokenizer reproduces every reference encoding exactly" {
            withQwen3 (fun tok ->
                let refs = references ()
                Expect.isGreaterThan refs.Length 200 "the fixture has its 211 texts"
                let bad =
                    refs |> Array.choose (fun (text, ids) ->
                        let got = tok.Encode text
                        if got = ids then None else Some(sprintf "%A\n  want %A\n  got  %A" (text.Substring(0, min 60 text.Length)) ids got))
                Expect.isEmpty bad (sprintf "%d of %d differ:\n%s" bad.Length refs.Length (String.Join("\n", Array.truncate 3 bad))))
        }
        test "decoding the reference ids gives back the (NFC-normalised) text" {
            withQwen3 (fun tok ->
                for text, ids in references () do
                    Expect.equal (tok.Decode ids) (text.Normalize NormalizationForm.FormC) (text.Substring(0, min 40 text.Length)))
        }
        test "Qwen3 special tokens, eos, pad and vocabulary size come from the files" {
            withQwen3 (fun tok ->
                Expect.equal tok.EosId 151645 "eos <|im_end|>"
                Expect.equal tok.PadId 151643 "pad <|endoftext|>"
                Expect.equal tok.BosId (Nullable()) "no bos"
                Expect.equal tok.VocabSize 151669 "151,643 entries + 26 added"
                Expect.equal tok.SpecialTokens.["<|im_start|>"] 151644 "im_start"
                Expect.equal tok.ChatFormat ChatFormat.ChatML "chat format"
                Expect.equal (tok.Decode([| 151644; 872; 151645 |], skipSpecialTokens = true)) "user" "skip special")
        }
        test "the Qwen chat prompt for a user message is ChatML ending at the assistant turn" {
            withQwen3 (fun tok ->
                let p = tok.ApplyChatTemplate "What is 2+2?"
                Expect.equal p "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n" "Qwen3 has no default system"
                let ids = tok.Encode p
                Expect.equal ids.[0] 151644 "starts with <|im_start|>"
                Expect.equal (tok.Encode(tok.ApplyChatTemplate("x", "Be brief."))).[0..2] [| 151644; 8948; 198 |] "system turn")
        }
        test "a Qwen2.5 template's default system message is found" {
            let template = "{%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %}"
            Expect.equal (ChatTemplates.DefaultChatMLSystem template) "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." "default system"
            let math = "{{- '<|im_start|>system\\nPlease reason step by step, and put your final answer within \\\\boxed{}.<|im_end|>\\n' }}"
            Expect.equal (ChatTemplates.DefaultChatMLSystem math) "Please reason step by step, and put your final answer within \\boxed{}." "Qwen2.5-Math, escapes undone"
            Expect.equal (ChatTemplates.Render(ChatFormat.Llama3, "hi", null, "<|begin_of_text|>"))
                "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" "llama3"
        }
        test "a saved BPE tokenizer reloads with the same encodings" {
            withQwen3 (fun tok ->
                use dir = new TempDir()
                tok.Save dir.Path
                let again = Tokenizers.FromFolder dir.Path
                for text, ids in references () |> Array.truncate 20 do
                    Expect.equal (again.Encode text) ids "same ids")
        }
        test "ignore_merges emits whole vocab words, and merges alone do not" {
            use dir = new TempDir()
            File.WriteAllText(dir.File "tokenizer_config.json", """{"eos_token":"<|end|>"}""")
            File.WriteAllText(dir.File "tokenizer.json", ignoreMergesJson true)
            let withIgnore = BpeTokenizer.FromFolder dir.Path
            Expect.equal (withIgnore.Encode "abc abc<|end|>") [| 5; 8; 4; 6 |] "abc whole; ' abc' is not a vocab entry, so it merges to ' a' + 'bc'"
            File.WriteAllText(dir.File "tokenizer.json", ignoreMergesJson false)
            let plain = BpeTokenizer.FromFolder dir.Path
            Expect.equal (plain.Encode "abc<|end|>") [| 0; 4; 6 |] "merges: b+c first, then nothing joins a+bc"
            Expect.equal (plain.Decode [| 8; 4; 6 |]) " abc<|end|>" "decode"
        }
        test "the Llama-3 tokenizer reproduces an independent implementation (opt-in: SIMKO_LLAMA3_TOKENIZER)" {
            // Needs the Llama-3 files, which the repository does not ship; see fixtures/make-llama3-reference.mjs.
            match Environment.GetEnvironmentVariable "SIMKO_LLAMA3_TOKENIZER" with
            | null | "" -> skiptest "set SIMKO_LLAMA3_TOKENIZER to a folder made by fixtures/make-llama3-reference.mjs"
            | dir ->
                let tok = BpeTokenizer.FromFolder dir
                Expect.equal tok.BosId (Nullable 128000) "bos <|begin_of_text|>"
                Expect.equal tok.ChatFormat ChatFormat.Llama3 "chat format"
                let refs =
                    File.ReadLines(Path.Combine(dir, "llama3-reference.jsonl"))
                    |> Seq.filter (fun l -> l.Trim() <> "")
                    |> Seq.map (fun l ->
                        use d = JsonDocument.Parse l
                        d.RootElement.GetProperty("text").GetString(), [| for x in d.RootElement.GetProperty("ids").EnumerateArray() -> x.GetInt32() |])
                    |> Seq.toArray
                for text, ids in refs do
                    Expect.equal (tok.Encode text) ids (text.Substring(0, min 40 text.Length))
                    Expect.equal (tok.Decode ids) text "decode"
        }
        test "the character tokenizer reserves pad, eos and bos and round-trips its alphabet" {
            let tok = CharTokenizer "0123456789+= "
            Expect.equal (tok.PadId, tok.EosId, tok.BosId) (0, 1, Nullable 2) "reserved ids"
            Expect.equal tok.VocabSize 16 "3 + 13"
            let ids = tok.Encode "12+3=15<eos>"
            Expect.equal ids [| 4; 5; 13; 6; 14; 4; 8; 1 |] "ids"
            Expect.equal (tok.Decode ids) "12+3=15<eos>" "decode"
            Expect.equal (tok.Decode(ids, skipSpecialTokens = true)) "12+3=15" "skip special"
            let e = throws<ArgumentException> (fun () -> tok.Encode "1x" |> ignore) "unknown char"
            Expect.stringContains e.Message "'x'" "names the character"
            throws<ArgumentException> (fun () -> CharTokenizer "aba" |> ignore) "duplicate" |> ignore
            use dir = new TempDir()
            tok.Save dir.Path
            let back = Tokenizers.FromFolder dir.Path :?> CharTokenizer
            Expect.equal back.Alphabet tok.Alphabet "reloaded"
        }
        test "a folder without tokenizer files says what it looked for" {
            use dir = new TempDir()
            let e = throws<FileNotFoundException> (fun () -> Tokenizers.FromFolder dir.Path |> ignore) "none"
            Expect.stringContains e.Message "tokenizer.json" "names the file"
        }
    ]
