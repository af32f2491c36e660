/// Prompt templates: Qwen's ChatML (checked against the shared tokenizer fixture), plain, and task prompts.
module SimKO.Data.Tests.PromptTests

open System.IO
open Expecto
open SimKO.Data
open SimKO.Data.Prompts
open SimKO.Data.Tasks
open SimKO.Data.Tests.Support

let private problem = Problem("p", "What is $1+1$?", "2")

let private expectedChat =
    "<|im_start|>user\nWhat is $1+1$?\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"

let tests =
    testList "prompts" [
        test "the paper's chat prompt is one ChatML user turn followed by the assistant header" {
            Expect.equal (ChatTemplate.Paper.Render problem) expectedChat "chat prompt"
        }
        test "Qwen3's tokenizer config adds no system turn, so its template renders the same" {
            match fixtureDir () with
            | None -> skiptest "the shared tokenizer fixture is absent (../shared/fixtures/qwen3-tokenizer)"
            | Some dir ->
                let t = ChatTemplate.FromTokenizerConfig(Path.Combine(dir, "tokenizer_config.json"))
                Expect.isNull t.System "no default system message"
                Expect.equal (t.Render problem) expectedChat "same prompt"
        }
        test "a Qwen2.5-style template's default system message is taken from the template" {
            let template =
                "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}" +
                "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
            let json = System.Text.Json.JsonSerializer.Serialize(dict [ "chat_template", template ])
            withTempFile ".json" json (fun path ->
                let t = ChatTemplate.FromTokenizerConfig path
                Expect.equal t.System "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." "system"
                Expect.stringStarts (t.Render problem) "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\n" "system turn first")
        }
        test "a non-ChatML template is refused with the reason" {
            let json = System.Text.Json.JsonSerializer.Serialize(dict [ "chat_template", "<|start_header_id|>user<|end_header_id|>" ])
            withTempFile ".json" json (fun path ->
                let e = expectDataError (fun () -> ChatTemplate.FromTokenizerConfig path |> ignore)
                expectMentions e.Message [ "chat_template"; "ChatML" ])
        }
        test "Qwen3's non-thinking switch appends the empty think block" {
            let t = ChatTemplate(EnableThinking = System.Nullable false)
            Expect.equal (t.Render problem) (expectedChat + "<think>\n\n</think>\n\n") "non-thinking"
        }
        test "the plain template for base models" {
            Expect.equal (PlainTemplate.Paper.Render problem) "Question: What is $1+1$?\nPlease reason step by step, and put your final answer within \\boxed{}.\nAnswer: " "plain"
            Expect.equal (PlainTemplate(Instruction = "").Render problem) "Question: What is $1+1$?\nAnswer: " "no instruction"
        }
        test "templates by name, unknown names listed" {
            Expect.equal (PromptTemplates.Create("chat").Render problem) expectedChat "chat"
            let message = try PromptTemplates.Create "llama" |> ignore; "" with :? System.ArgumentException as e -> e.Message
            expectMentions message [ "llama"; "chat"; "plain" ]
        }
        test "a task template is the task's own prompt" {
            let task = CountdownTask()
            let p = task.Generate(Split.Test, 0, 1).[0]
            Expect.equal (TaskTemplate(task).Render p) (task.Prompt p) "task prompt"
        }
    ]
