/// The `tokenize` and `bench-rollout` command lines, and `tokenize` end to end.
module SimKO.Host.Tests.CommandTests

open System.IO
open Expecto
open SimKO.Cli
open SimKO.Host.CommandHandlers
open SimKO.Host.Tests.Helpers

let private fixture = sharedDir |> Option.map (fun s -> Path.Combine(s, "fixtures", "qwen3-tokenizer"))

let tests =
    testList "commands" [
        test "tokenize and bench-rollout parse into their option records" {
            match Commands.parse [| "tokenize"; "--tokenizer"; "tok"; "-i"; "in.jsonl" |] with
            | Commands.Run(Commands.Command.Tokenize o) ->
                Expect.equal o { TokenizeArgs.Tokenizer = "tok"; TokenizeArgs.Input = Some "in.jsonl"; TokenizeArgs.Output = None } "tokenize"
            | other -> failtestf "parsed %A" other
            match Commands.parse [| "bench-rollout"; "--quick"; "--threads"; "1" |] with
            | Commands.Run(Commands.Command.BenchRollout o) ->
                Expect.equal (o.Batch, o.NewTokens, o.DModel, o.Layers, o.Threads) (16, 32, 256, 4, Some 1) "quick defaults"
            | other -> failtestf "parsed %A" other
            match Commands.parse [| "bench-rollout" |] with
            | Commands.Run(Commands.Command.BenchRollout o) -> Expect.equal (o.Batch, o.NewTokens) (64, 128) "full defaults: B 64, 128 new tokens"
            | other -> failtestf "parsed %A" other
        }
        test "tokenize writes the reference ids for the reference texts, and rejects a bad line by number" {
            match fixture with
            | Some dir when Directory.Exists dir ->
                use tmp = new TempDir()
                let refs = File.ReadLines(Path.Combine(dir, "reference-encodings.jsonl")) |> Seq.truncate 12 |> Seq.toArray
                let input = tmp.File "in.jsonl"
                File.WriteAllLines(input, refs |> Array.map (fun l ->
                    use d = System.Text.Json.JsonDocument.Parse l
                    System.Text.Json.JsonSerializer.Serialize(dict [ "text", d.RootElement.GetProperty("text").GetString() ])))
                let output = tmp.File "out.jsonl"
                let rc = TokenizeCommand.Run { Tokenizer = dir; Input = Some input; Output = Some output }
                Expect.equal rc 0 "exit code"
                let ids (l: string) =
                    use d = System.Text.Json.JsonDocument.Parse l
                    [| for x in d.RootElement.GetProperty("ids").EnumerateArray() -> x.GetInt32() |]
                Expect.equal (File.ReadAllLines output |> Array.map ids) (refs |> Array.map ids) "ids"
                File.WriteAllLines(input, [| """{"text": "ok"}"""; """{"txt": 1}""" |])
                Expect.equal (TokenizeCommand.Run { Tokenizer = dir; Input = Some input; Output = Some output }) 1 "bad line"
            | _ -> skiptest "shared/fixtures/qwen3-tokenizer not found"
        }
    ]
