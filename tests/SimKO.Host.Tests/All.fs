/// Every test of SimKO.Host, joined into one list for the test console.
module SimKO.Host.Tests.All
open Expecto
let tests =
    testList "Host" [
        RuntimeTests.tests
        SafeTensorsTests.tests
        ModelTests.tests
        CheckpointTests.tests
        TokenizerTests.tests
        SamplerTests.tests
        RolloutTests.tests
        CommandTests.tests
    ]
