/// `simko plan` (issue 12): parameters exactly from config.json (hand-computed for Qwen2.5-7B and
/// Llama-3.2-3B shapes, and equal to a built model's count for any small config), every component
/// against hand arithmetic, the verdict, and the JSON keys.
module SimKO.Tests.MemoryPlanTests

open System.IO
open Expecto
open SimKO.Host.Model
open SimKO.Host.Planning
open SimKO.Host.Commands

/// Qwen2.5-7B's shapes: hidden 3584, MLP 18944, 28 layers, 28 heads, 4 KV heads, V 152064, untied, q/k/v bias.
let qwen7b = ModelConfig("qwen2", 152064, 3584, 18944, 28, 28, 4, 1e-6, 1e6, false, true, 32768)

/// The README recipe: bf16, offload, checkpointing, 1,024-token logits chunks, 12,000-token
/// micro-batches (10,286 response tokens), 64 rollout rows × (512 + 3,072) tokens.
let recipe = PlanSettings(2, true, true, 1024L, 12000L, 10286L, 64L, 3584L, false)

/// `s` on `n` ranks, its optimizer state sharded or not (PlanSettings is a C# record: no F# `with`).
let private onRanks (n: int) (shard: bool) (offload: bool) (s: PlanSettings) =
    PlanSettings(s.ComputeBytes, offload, s.GradientCheckpointing, s.LogitsChunkTokens, s.MicroBatchTokens, s.ResponseTokens, s.RolloutRows,
                 s.SequenceTokens, s.ReferenceModel, s.LoraRank, s.LoraTargets, s.StatisticsTokens, n, shard, s.StatisticsGatherBytes)

let tests =
    testList "memory plan" [
        testCase "Qwen2.5-7B-shaped config has exactly 7,615,616,512 parameters" <| fun () ->
            // embed 152064·3584 = 544,997,376 (× 2: untied head); per layer q 3584·3584 + 3584,
            // k and v 3584·512 + 512 each, o 3584·3584, MLP 3·3584·18944, norms 2·3584
            // = 233,057,792 × 28 layers = 6,525,618,176; final norm 3,584
            Expect.equal (MemoryPlan.Parameters qwen7b) 7_615_616_512L "parameters"
        testCase "Llama-3.2-3B-shaped config (tied, no biases, GQA 24/8) has exactly 3,212,749,824 parameters" <| fun () ->
            let llama3b = ModelConfig("llama", 128256, 3072, 8192, 28, 24, 8, 1e-5, 5e5, true, false, 131072)
            Expect.equal (MemoryPlan.Parameters llama3b) 3_212_749_824L "parameters"
        testCase "the count equals a built model's parameters for small configs of every kind" <| fun () ->
            for vocab, d, inter, layers, heads, kv, tied, bias in
                [ 20, 32, 64, 2, 4, 4, true, true; 23, 48, 40, 3, 6, 2, false, true; 17, 32, 96, 1, 4, 1, false, false ] do
                use m = new CausalLM(ModelConfig((if bias then "qwen2" else "llama"), vocab, d, inter, layers, heads, kv, 1e-6, 1e4, tied, bias, 64))
                let built = m.parameters() |> Seq.sumBy (fun p -> p.numel())
                Expect.equal (MemoryPlan.Parameters m.Config) built (sprintf "V %d d %d I %d L %d h %d kv %d tied %b bias %b" vocab d inter layers heads kv tied bias)
        testCase "the recipe's components equal the hand-computed bytes and fit 80 GiB" <| fun () ->
            let p = 7_615_616_512L
            let plan = MemoryPlan.Compute(qwen7b, recipe, 80L * 1073741824L)
            let k = plan.Components
            Expect.equal k.Weights (p * 2L) "weights: bf16"
            Expect.equal k.MasterWeights 0L "master weights: offloaded"
            Expect.equal k.Gradients (p * 2L) "gradients: the bf16 gradients of backward (fp32 sums offloaded)"
            Expect.equal k.OptimizerState 0L "moments: offloaded"
            // per token per layer: (9·3584 + 3·512 + 4·18944)·2 + 4·3584·4 = 276,480 B;
            // checkpointed: 12,000 × (28 · 3584 · 2 + 276,480) = 5,726,208,000
            Expect.equal (MemoryPlan.ActivationBytesPerTokenPerLayer(qwen7b, 2)) 276_480L "activation bytes per token per layer"
            Expect.equal k.Activations 5_726_208_000L "activations with checkpointing"
            Expect.equal plan.ActivationsWithoutCheckpointing (12000L * 276_480L * 28L) "activations without checkpointing"
            // 3 · 1024 · 152064 · 4 + 152064 · 3584 · 4
            Expect.equal k.Logits 4_048_551_936L "logits chunk + fp32 head-gradient accumulator"
            // 64 rows × 3584 tokens × 28 layers × 2 × 512 × 2 B
            Expect.equal k.KvCache 13_153_337_344L "KV cache"
            Expect.equal plan.TotalBytes (p * 4L + 5_726_208_000L + 4_048_551_936L + 13_153_337_344L) "total"
            Expect.equal plan.HostBytes (p * 4L + p * 4L + p * 8L) "host: fp32 master, fp32 sums, moments"
            Expect.isTrue plan.Fits "fits"
        testCase "without offload and checkpointing it does not fit, and the advice names both" <| fun () ->
            let plain = PlanSettings(2, false, false, 0L, 12000L, 10286L, 64L, 3584L, false)
            let plan = MemoryPlan.Compute(qwen7b, plain, 80L * 1073741824L)
            let p = 7_615_616_512L
            Expect.equal plan.Components.MasterWeights (p * 4L) "fp32 master"
            Expect.equal plan.Components.Gradients (p * 6L) "bf16 gradients + fp32 sums"
            Expect.equal plan.Components.OptimizerState (p * 8L) "two fp32 moments"
            Expect.equal plan.Components.Logits (4L * 10286L * 152064L * 4L) "whole logits"
            Expect.isFalse plan.Fits "does not fit"
            let advice = String.concat "\n" plan.Advice
            Expect.stringContains advice "optimizer_offload=true" "offload"
            Expect.stringContains advice "gradient_checkpointing=true" "checkpointing"
            Expect.stringContains advice "logits_chunk_tokens" "chunked head"
        testCase "float32 compute keeps no separate master copy or gradient sums" <| fun () ->
            let fp32 = PlanSettings(4, false, true, 1024L, 1000L, 500L, 0L, 3584L, false)
            let plan = MemoryPlan.Compute(qwen7b, fp32, 80L * 1073741824L)
            let p = 7_615_616_512L
            Expect.equal plan.Components.Weights (p * 4L) "fp32 weights"
            Expect.equal plan.Components.MasterWeights 0L "the weights are the master"
            Expect.equal plan.Components.Gradients (p * 4L) "fp32 gradients, accumulated in place"
            Expect.equal plan.Components.KvCache 0L "rollouts from a server"
        testCase "--json has exactly the documented keys" <| fun () ->
            let json = PlanCommand.Json(MemoryPlan.Compute(qwen7b, recipe, 80L * 1073741824L))
            Expect.equal [ for kv in json -> kv.Key ] [ "parameters"; "components"; "total_bytes"; "gpu_memory_bytes"; "fits" ] "top-level keys"
            Expect.equal [ for kv in json.["components"].AsObject() -> kv.Key ]
                [ "weights"; "master_weights"; "gradients"; "optimizer_state"; "activations"; "logits"; "kv_cache"; "statistics"; "collective" ] "component keys"
            Expect.equal (json.["parameters"].GetValue<int64>()) 7_615_616_512L "parameters"
        testCase "plan reads config.json of a folder through the command line" <| fun () ->
            let dir = Path.Combine(Path.GetTempPath(), sprintf "simko-plan-%d" System.Environment.ProcessId)
            Directory.CreateDirectory dir |> ignore
            File.WriteAllText(Path.Combine(dir, "config.json"), qwen7b.ToJson("bfloat16"))
            match SimKO.Cli.Commands.parse [| "plan"; "--model"; dir; "--set"; "dtype=bfloat16"; "--set"; "gradient_checkpointing=true"; "--json" |] with
            | SimKO.Cli.Commands.Parsed.Run (SimKO.Cli.Commands.Command.Plan o) ->
                Expect.isTrue o.Json "--json"
                Expect.isTrue o.Spec.Memory.GradientCheckpointing "the training setting reached the spec"
                let settings = MemoryPlan.SettingsOf(o.Spec, o.PromptTokens)
                Expect.equal settings.ComputeBytes 2 "bf16"
            | other -> failtestf "expected a plan command, got %A" other
        testCase "forking's batch-gate entropy pass is counted: the mini-batch's fp32 entropies, beside GRPO's plan" <| fun () ->
            // issue 19 §4.1: the old plan gave forking exactly GRPO's bytes, as if the pass cost nothing
            let dir = Path.Combine(Path.GetTempPath(), sprintf "simko-plan-gate-%d" System.Environment.ProcessId)
            Directory.CreateDirectory dir |> ignore
            File.WriteAllText(Path.Combine(dir, "config.json"), qwen7b.ToJson("bfloat16"))
            let planOf methodName =
                match SimKO.Cli.Commands.parse [| "plan"; "--model"; dir; "--set"; sprintf "method=%s" methodName; "--set"; "dtype=bfloat16"
                                                  "--set"; "logits_chunk_tokens=1024"; "--set"; "prompts_per_step=64"; "--set"; "samples_per_prompt=8"
                                                  "--set"; "mini_batches=4"; "--set"; "max_new_tokens=3072"; "--json" |] with
                | SimKO.Cli.Commands.Parsed.Run (SimKO.Cli.Commands.Command.Plan o) ->
                    let s = MemoryPlan.SettingsOf(o.Spec, o.PromptTokens)
                    s, MemoryPlan.Compute(qwen7b, s, 80L * 1073741824L)
                | other -> failtestf "expected a plan command, got %A" other
            let sg, grpo = planOf "grpo"
            let sf, forking = planOf "forking"
            Expect.equal sg.StatisticsTokens 0L "GRPO has no statistics pass"
            // 64 · 8 / 4 = 128 rows of a mini-batch × 3,072 response positions
            Expect.equal sf.StatisticsTokens (128L * 3072L) "the mini-batch's response positions"
            Expect.equal forking.Components.Statistics (128L * 3072L * 4L) "fp32 entropies; the chunked pass peaks below the update"
            Expect.equal (forking.TotalBytes - grpo.TotalBytes) (128L * 3072L * 4L) "the total counts the pass"
        testCase "per rank of 3 ranks: shard_optimizer keeps ⌈p/3⌉ parameters' masters, fp32 sums and moments; replicated adds only the gradient bucket" <| fun () ->
            let p = 7_615_616_512L
            let owned = 2_538_538_838L                                          // ⌈7,615,616,512 / 3⌉
            let plain = PlanSettings(2, false, true, 1024L, 12000L, 10286L, 64L, 3584L, false)
            let one = MemoryPlan.Compute(qwen7b, plain, 80L * 1073741824L)
            let replicated = MemoryPlan.Compute(qwen7b, onRanks 3 false false plain, 80L * 1073741824L)
            let sharded = MemoryPlan.Compute(qwen7b, onRanks 3 true false plain, 80L * 1073741824L)
            let bucket = 16_777_216L                                            // 16 Mi fp32 elements, 64 MiB
            Expect.equal replicated.Components.Collective (bucket * 4L) "replicated: the all-reduced fp32 bucket"
            Expect.equal replicated.TotalBytes (one.TotalBytes + bucket * 4L) "replicated: one process's bytes plus the bucket"
            let k = sharded.Components
            Expect.equal k.Weights (p * 2L) "whole bf16 weights on every rank"
            Expect.equal k.MasterWeights (owned * 4L) "fp32 masters of the owned shard"
            Expect.equal k.Gradients (p * 2L + owned * 4L) "whole bf16 gradients of backward + fp32 sums of the shard"
            Expect.equal k.OptimizerState (owned * 8L) "moments of the shard"
            // the fp32 bucket, its reduce-scattered third ⌈16,777,216 / 3⌉ = 5,592,406 elements, the bf16 all-gather bucket
            Expect.equal k.Collective (bucket * 4L + 5_592_406L * 4L + bucket * 2L) "collective buffers"
            Expect.equal (k.Activations, k.Logits, k.KvCache) (one.Components.Activations, one.Components.Logits, one.Components.KvCache) "the micro-batch's memory is the same"
            Expect.equal (replicated.TotalBytes - sharded.TotalBytes) ((p - owned) * 16L - 5_592_406L * 4L - bucket * 2L) "the saving: 16 B of 2/3 of the parameters, less the buffers"
            let offloaded = MemoryPlan.Compute(qwen7b, onRanks 3 true true plain, 80L * 1073741824L)
            Expect.equal offloaded.HostBytes (owned * 16L) "offloaded: the shard's master, sums and moments in host memory"
        testCase "plan --world-size: each rank samples its share and forking gathers the mini-batch context" <| fun () ->
            let dir = Path.Combine(Path.GetTempPath(), sprintf "simko-plan-dp-%d" System.Environment.ProcessId)
            Directory.CreateDirectory dir |> ignore
            File.WriteAllText(Path.Combine(dir, "config.json"), qwen7b.ToJson("bfloat16"))
            let planOf (args: string list) =
                let common =
                    [ "plan"; "--model"; dir; "--set"; "dtype=bfloat16"; "--set"; "logits_chunk_tokens=1024"; "--set"; "prompts_per_step=64"
                      "--set"; "samples_per_prompt=8"; "--set"; "mini_batches=4"; "--set"; "max_new_tokens=3072" ]
                match SimKO.Cli.Commands.parse (Array.ofList (common @ args)) with
                | SimKO.Cli.Commands.Parsed.Run (SimKO.Cli.Commands.Command.Plan o) -> o, MemoryPlan.SettingsOf(o.Spec, o.PromptTokens, o.WorldSize)
                | other -> failtestf "expected a plan command, got %A" other
            let o, s = planOf [ "--world-size"; "8"; "--set"; "method=forking" ]
            Expect.equal o.WorldSize 8 "--world-size"
            Expect.equal s.RolloutRows 64L "64 · 8 / 8 sequences sampled per rank"
            Expect.equal s.StatisticsTokens (16L * 3072L) "this rank's 128 / 8 rows of a mini-batch × 3,072 positions"
            // 128 rows × (2 channels (mask, entropy) × 3,072 positions + 1 advantage) × 4 B, gathered and reassembled
            Expect.equal s.StatisticsGatherBytes (2L * 4L * 128L * (2L * 3072L + 1L)) "the gathered context"
            let _, grpo = planOf [ "--world-size"; "8"; "--set"; "method=grpo" ]
            Expect.equal grpo.StatisticsGatherBytes 0L "GRPO sums counts only"
            let _, klcov = planOf [ "--world-size"; "8"; "--set"; "method=kl-cov" ]
            Expect.equal klcov.StatisticsGatherBytes (2L * 4L * 128L * (2L * 3072L + 1L)) "KL-Cov gathers mask and old log-probs"
            let _, single = planOf [ "--set"; "method=kl-cov" ]
            Expect.equal single.StatisticsGatherBytes 0L "one rank gathers nothing"
            let json = PlanCommand.Json(MemoryPlan.Compute(qwen7b, s, 80L * 1073741824L), MemoryPlan.Compute(qwen7b, onRanks 8 true false s, 80L * 1073741824L))
            Expect.equal (json.["world_size"].GetValue<int>()) 8 "world_size"
            Expect.equal [ for kv in json.["shard_optimizer"].AsObject() -> kv.Key ] [ "components"; "total_bytes"; "fits" ] "the sharded plan's keys"
            match SimKO.Cli.Commands.parse [| "plan"; "--model"; dir; "--world-size"; "0" |] with
            | SimKO.Cli.Commands.Parsed.Exit (message, code) ->
                Expect.stringContains message "--world-size must be >= 1" "names the option"
                Expect.equal code 2 "usage error"
            | other -> failtestf "expected a usage error, got %A" other
        testCase "an unchunked no-checkpointing pass never exceeds the update's peak; a chunked one over a checkpointed update is counted by its excess" <| fun () ->
            let s = PlanSettings(2, true, true, 1024L, 12000L, 10286L, 0L, 3584L, false, StatisticsTokens = 1000L)
            let plan = MemoryPlan.Compute(qwen7b, s, 80L * 1073741824L)
            Expect.equal plan.Components.Statistics 4000L "chunked pass: layer inputs + one layer + 3 chunk logits < the update's"
            let u = PlanSettings(2, true, false, 0L, 12000L, 10286L, 0L, 3584L, false, StatisticsTokens = 1000L)
            Expect.equal (MemoryPlan.Compute(qwen7b, u, 80L * 1073741824L)).Components.Statistics 4000L "unchunked: the same logits as the update's"
    ]
