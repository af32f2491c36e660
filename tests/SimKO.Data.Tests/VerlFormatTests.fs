/// verl's dataset format (issue 23 §1): a Parquet file with verl's nested columns (prompt as a list
/// of messages, reward_model.ground_truth, extra_info) is detected and read with no field options,
/// the same rows as JSONL read identically, nested fields are named with dots, bad rows name
/// file, row and field.
module SimKO.Data.Tests.VerlFormatTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json.Nodes
open Expecto
open Parquet.Serialization
open SimKO.Data.Math

[<CLIMutable>]
type Message = { role: string; content: string }

[<CLIMutable>]
type RewardModel = { style: string; ground_truth: string }

[<CLIMutable>]
type ExtraInfo = { split: string; index: int64 }

[<CLIMutable>]
type VerlRow = { data_source: string; prompt: List<Message>; ability: string; reward_model: RewardModel; extra_info: ExtraInfo }

let private inFolder (f: string -> unit) =
    let dir = Path.Combine(Path.GetTempPath(), "simko-verl-" + Guid.NewGuid().ToString("N"))
    Directory.CreateDirectory dir |> ignore
    try f dir finally Directory.Delete(dir, true)

let rows : VerlRow list = [
    { data_source = "openai/gsm8k"
      prompt = List [ { role = "system"; content = "You are careful." }; { role = "user"; content = "What is 2+3? Let's think step by step and output the final answer after \"####\"." } ]
      ability = "math"; reward_model = { style = "rule"; ground_truth = "5" }; extra_info = { split = "train"; index = 7L } }
    { data_source = "openai/gsm8k"
      prompt = List [ { role = "user"; content = "Natalia sold 48 clips. Half as many in May. How many altogether?" } ]
      ability = "math"; reward_model = { style = "rule"; ground_truth = "72" }; extra_info = { split = "train"; index = 8L } } ]

/// The same rows as verl's JSONL (what pandas' to_json(orient="records", lines=True) writes).
let jsonl (r: VerlRow) =
    let o = JsonObject()
    o["data_source"] <- JsonValue.Create r.data_source
    o["prompt"] <- JsonArray([| for m in r.prompt -> JsonObject(dict [ "role", (JsonValue.Create m.role :> JsonNode); "content", JsonValue.Create m.content ]) :> JsonNode |])
    o["ability"] <- JsonValue.Create r.ability
    o["reward_model"] <- JsonObject(dict [ "style", (JsonValue.Create r.reward_model.style :> JsonNode); "ground_truth", JsonValue.Create r.reward_model.ground_truth ])
    o["extra_info"] <- JsonObject(dict [ "split", (JsonValue.Create r.extra_info.split :> JsonNode); "index", JsonValue.Create r.extra_info.index ])
    o.ToJsonString()

/// What a problem carries: id, question, answer, messages, data source, extra_info (as a JSON object).
let private view (p: MathProblem) =
    p.Id, p.Question, p.Answer, (p.Messages |> Seq.map (fun m -> m.Role, m.Content) |> List.ofSeq), p.DataSource,
    (JsonNode.Parse p.ExtraInfoJson).ToJsonString()

let private defaults = FieldOptions([| "problem"; "question" |], "answer")

let private failsWith (load: unit -> obj) (parts: string list) =
    try load () |> ignore; failtest "expected a DatasetException"
    with :? DatasetException as e ->
        for p in parts do Expect.stringContains e.Message p "the message names it"

let tests =
    testList "verl format" [
        test "a verl Parquet file with nested columns is detected and reads the same problems as the same rows in JSONL" {
            inFolder (fun dir ->
                let parquet = Path.Combine(dir, "gsm8k.parquet")
                ParquetSerializer.SerializeAsync(rows, parquet).GetAwaiter().GetResult() |> ignore
                let json = Path.Combine(dir, "gsm8k.jsonl")
                File.WriteAllLines(json, rows |> List.map jsonl)
                let fromParquet = Datasets.LoadFile(parquet, defaults)
                let fromJson = Datasets.LoadFile(json, defaults)
                Expect.equal (fromParquet.Problems |> Seq.map view |> List.ofSeq) (fromJson.Problems |> Seq.map view |> List.ofSeq) "the same problems"
                let id, question, answer, messages, source, _ = view fromParquet.Problems.[0]
                Expect.equal (id, answer, source) ("7", "5", "openai/gsm8k") "id from extra_info.index, answer from reward_model.ground_truth"
                Expect.equal messages [ "system", "You are careful."; "user", "What is 2+3? Let's think step by step and output the final answer after \"####\"." ] "the messages"
                Expect.stringStarts question "What is 2+3?" "the question is the user's message"
                for r in [ fromParquet; fromJson ] do
                    Expect.stringContains r.Format "data_format=verl (detected from the columns data_source, prompt, ability, reward_model, extra_info" "said for the log"
                    Expect.stringContains r.Format "answer from 'reward_model.ground_truth'" "the answer field named")
        }
        test "a nested field is named with dots anywhere a field is named, in JSONL and Parquet" {
            inFolder (fun dir ->
                let json = Path.Combine(dir, "nested.jsonl")
                File.WriteAllLines(json, [ """{"q": {"text": "1+1?"}, "meta": {"answer": {"value": 2}}, "info": {"id": "a"}}""" ])
                let r = Datasets.LoadFile(json, FieldOptions([| "q.text" |], "meta.answer.value", AnswerFrom.Answer, "info.id"))
                Expect.equal [ for p in r.Problems -> p.Id, p.Question, p.Answer ] [ "a", "1+1?", "2" ] "dotted fields"
                let parquet = Path.Combine(dir, "v.parquet")
                ParquetSerializer.SerializeAsync(rows, parquet).GetAwaiter().GetResult() |> ignore
                let r = Datasets.LoadFile(parquet, FieldOptions([| "prompt" |], "reward_model.style", AnswerFrom.Answer, "data_source") |> fun f -> FieldOptions(f.QuestionFields, f.AnswerField, f.Answer, f.IdField, Format = DataFormat.Fields))
                Expect.equal [ for p in r.Problems -> p.Answer ] [ "rule"; "rule" ] "a dotted answer column in a struct column"
                Expect.isNull r.Format "fields asked: not read as verl")
        }
        test "bad verl rows name the file, the row and the field" {
            inFolder (fun dir ->
                let json = Path.Combine(dir, "bad.jsonl")
                let good = jsonl rows.[1]
                File.WriteAllLines(json, [ good; good.Replace("\"content\"", "\"text\"") ])
                failsWith (fun () -> box (Datasets.LoadFile(json, defaults))) [ json + ":2: field 'prompt' message 1: has no 'content'" ]
                File.WriteAllLines(json, [ good; good.Replace("\"ground_truth\"", "\"truth\"") ])
                failsWith (fun () -> box (Datasets.LoadFile(json, defaults))) [ json + ":2: missing field 'reward_model.ground_truth'" ]
                File.WriteAllLines(json, [ good.Replace("\"prompt\":[", "\"prompt\":[17,") ])
                failsWith (fun () -> box (Datasets.LoadFile(json, defaults))) [ json + ":1: field 'prompt' message 1: is a number (17), expected an object" ]
                File.WriteAllLines(json, [ """{"question": "q", "answer": "1"}""" ])
                failsWith (fun () -> box (Datasets.LoadFile(json, FieldOptions([| "question" |], "answer", Format = DataFormat.Verl))))
                    [ json + ": data_format=verl needs the column 'prompt' and 'reward_model'" ])
        }
    ]
