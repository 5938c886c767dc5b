import assert from 'node:assert/strict';
import { CloudWatchLogsClient, GetLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { mockClient } from 'aws-sdk-client-mock';
import { cloudWatchLogsReader } from '../../../src/platforms/aws-ecs/context';

describe('aws-ecs: the CloudWatch Logs reader of release commands', () => {
  const logs = mockClient(CloudWatchLogsClient);
  afterEach(() => logs.reset());
  after(() => logs.restore());

  it("reads the end of a task's stream in the region its awslogs configuration names", async () => {
    logs.on(GetLogEventsCommand).resolves({ events: [{ message: 'applied 002_orders' }] });
    const input = {
      logGroupName: '/ecs/shop',
      logStreamName: 'app/app/0123',
      startFromHead: false as const,
      limit: 200,
    };
    const out = await cloudWatchLogsReader().getLogEvents('eu-west-1', input);
    assert.deepEqual(out.events, [{ message: 'applied 002_orders' }]);
    const calls = logs.commandCalls(GetLogEventsCommand);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]!.args[0].input, input);
    assert.equal(await calls[0]!.thisValue.config.region(), 'eu-west-1');
    await cloudWatchLogsReader().getLogEvents('us-east-1', input);
    assert.equal(await logs.commandCalls(GetLogEventsCommand)[1]!.thisValue.config.region(), 'us-east-1');
  });
});
