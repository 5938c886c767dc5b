import assert from 'node:assert/strict';
import { DescribeSecurityGroupsCommand, DescribeSubnetsCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  CreateClusterCommand,
  CreateServiceCommand,
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  ECSClient,
  RegisterTaskDefinitionCommand,
} from '@aws-sdk/client-ecs';
import { CreateDBInstanceCommand, DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { CreateSecretCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { awsClients, realTime, TAG, type AwsContext } from '../../src/platforms/aws-ecs/context';
import { RDS_TAG } from '../../src/platforms/aws-ecs/rds-kinds';
import { createRdsSwap } from '../../src/platforms/aws-ecs/rds-swap';
import type { AwsEcsSpec, AwsRdsSpec } from '../../src/shared/service-plan';
import { motoCredentials, motoDeploymentSeam, startMoto, type MotoServer, withMotoCredentials } from '../helpers/moto';
import { fargateTask } from './moto-shop';

/**
 * The endpoint swap of a database restore with the secret and taskEnv holders (aws.rds.endpoint), against moto_server
 * with the real SDK clients: the restored instance's address written where the tasks read the database host, the
 * services redeployed, the old instance tagged as replaced and the restored one as live. (The SSM holder runs in
 * aws-ecs-moto.test.ts, through the CLI.)
 *
 * What moto cannot show, and where it is covered: moto runs no tasks (MOTO_ECS_SERVICE_RUNNING reports one) and keeps a service's deployment as created
 * (motoDeploymentSeam completes it, so the wait for the redeployment returns at once): redeployments still in
 * progress and one the circuit breaker fails are in rds.unit.test.ts; so is an Aurora cluster's writer endpoint.
 */
describe('RDS endpoint swap with the secret and taskEnv holders against moto', function () {
  this.timeout(120_000);
  const region = motoCredentials.AWS_REGION;
  let restoreEnv: (() => void) | undefined;
  let moto: MotoServer;
  let ecs: ECSClient;
  let rds: RDSClient;
  let secrets: SecretsManagerClient;
  let clients: ReturnType<typeof awsClients>;
  let restoredAddress: string;

  const contextWith = (endpoint: AwsRdsSpec['endpoint']): AwsContext =>
    ({
      spec: {
        region,
        endpoint: moto.endpoint,
        cluster: 'shop-moto',
        services: { blue: 'shop-blue', green: 'shop-green' },
        container: 'app',
        rolloutTimeoutMs: 10_000,
        pollIntervalMs: 20,
        rds: { instance: 'shop-db', database: 'shop', urlEnv: 'SHOP_DATABASE_URL', pollIntervalMs: 20, endpoint },
      } as unknown as AwsEcsSpec,
      clients,
      resolveAddress: (host: string, port: number) => ({ host, port }),
      env: {},
      pgBinDir: '',
      isRunning: async () => true,
      ...realTime,
      activity: () => undefined,
    }) as AwsContext;

  const instance = (id: string, tags: Record<string, string> = {}) =>
    rds.send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: id,
        Engine: 'postgres',
        EngineVersion: '15.8',
        DBInstanceClass: 'db.t4g.micro',
        AllocatedStorage: 20,
        MasterUsername: 'shop',
        MasterUserPassword: 'not-a-real-password',
        Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
      }),
    );
  const tagsOf = async (id: string) =>
    Object.fromEntries(
      (
        (await rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }))).DBInstances?.[0]?.TagList ?? []
      ).map((t) => [t.Key, t.Value]),
    );

  before(async () => {
    moto = await startMoto({ env: { MOTO_ECS_SERVICE_RUNNING: '1' } }); // moto runs no tasks: it reports them
    restoreEnv = withMotoCredentials();
    const config = { region, endpoint: moto.endpoint };
    ecs = new ECSClient(config);
    rds = new RDSClient(config);
    secrets = new SecretsManagerClient(config);
    clients = awsClients(region, moto.endpoint);
    motoDeploymentSeam(clients.ecs);
    const ec2 = new EC2Client(config);
    const subnet = ((await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? [])[0]!.SubnetId!;
    const securityGroup = (await ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups![0]!.GroupId!;
    ec2.destroy();

    await ecs.send(new CreateClusterCommand({ clusterName: 'shop-moto' }));
    const taskDefinition = (
      await ecs.send(
        new RegisterTaskDefinitionCommand({
          family: 'shop',
          ...fargateTask,
          containerDefinitions: [
            {
              name: 'app',
              image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v1',
              memory: 512,
              environment: [
                { name: 'DATABASE_HOST', value: 'shop-db.old.us-east-1.rds.amazonaws.com' },
                { name: 'APP_VERSION', value: 'v1' },
              ],
            },
          ],
        }),
      )
    ).taskDefinition!.taskDefinitionArn!;
    for (const [name, desiredCount] of [
      ['shop-blue', 1],
      ['shop-green', 0],
    ] as const) {
      await ecs.send(
        new CreateServiceCommand({
          cluster: 'shop-moto',
          serviceName: name,
          taskDefinition,
          desiredCount,
          launchType: 'FARGATE',
          networkConfiguration: {
            awsvpcConfiguration: { subnets: [subnet], securityGroups: [securityGroup], assignPublicIp: 'DISABLED' },
          },
        }),
      );
    }
    await instance('shop-db');
    const restored = await instance('shop-restore-1a2b3c4d', {
      [TAG.kind]: 'restore',
      [RDS_TAG.sourceInstance]: 'shop-db',
    });
    restoredAddress = restored.DBInstance?.Endpoint?.Address ?? '';
    assert.ok(restoredAddress, 'moto gives the restored instance an address');
    await secrets.send(
      new CreateSecretCommand({
        Name: 'shop/db',
        SecretString: JSON.stringify({ host: 'shop-db.old.us-east-1.rds.amazonaws.com', port: 5432, user: 'shop' }),
      }),
    );
    await secrets.send(new CreateSecretCommand({ Name: 'shop/not-json', SecretString: 'just a string' }));
  });

  after(async () => {
    for (const c of [ecs, rds, secrets]) c?.destroy();
    await moto?.stop();
    restoreEnv?.();
  });

  it("secret holder: sets the secret's host key to the restored address, keeps its other keys, promotes the copy", async () => {
    const swap = createRdsSwap(contextWith({ secret: 'shop/db', key: 'host' }));
    assert.equal(await swap('shop', 'shop_restore_1a2b3c4d', 'shop_replaced'), 'swapped');
    const value = JSON.parse((await secrets.send(new GetSecretValueCommand({ SecretId: 'shop/db' }))).SecretString!);
    assert.deepEqual(value, { host: restoredAddress, port: 5432, user: 'shop' });
    assert.equal((await tagsOf('shop-db'))[RDS_TAG.replacedBy], 'shop-restore-1a2b3c4d');
    assert.equal((await tagsOf('shop-restore-1a2b3c4d'))[TAG.kind], 'live');
    assert.equal(await swap('shop', 'shop_restore_1a2b3c4d', 'shop_replaced'), 'already swapped');
  });

  it('secret holder: a secret that is not a JSON object is refused (SecretNotJson)', async () => {
    const swap = createRdsSwap(contextWith({ secret: 'shop/not-json', key: 'host' }));
    await assert.rejects(swap('shop', 'shop_restore_1a2b3c4d', 'shop_replaced'), (err: Error) => {
      assert.equal((err as { type?: string }).type, 'SecretNotJson');
      return true;
    });
  });

  it("taskEnv holder: a new revision of each colour's task definition with the variable set, deployed", async () => {
    const swap = createRdsSwap(contextWith({ taskEnv: 'DATABASE_HOST' }));
    assert.equal(await swap('shop', 'shop_restore_1a2b3c4d', 'shop_replaced'), 'swapped');
    const services =
      (await ecs.send(new DescribeServicesCommand({ cluster: 'shop-moto', services: ['shop-blue', 'shop-green'] })))
        .services ?? [];
    for (const s of services) {
      assert.match(s.taskDefinition ?? '', /:task-definition\/shop:2$/, `${s.serviceName} runs the new revision`);
    }
    const td = (await ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: 'shop:2' }))).taskDefinition!;
    const env = Object.fromEntries((td.containerDefinitions?.[0]?.environment ?? []).map((e) => [e.name, e.value]));
    assert.deepEqual(env, { DATABASE_HOST: restoredAddress, APP_VERSION: 'v1' });
    assert.equal(await swap('shop', 'shop_restore_1a2b3c4d', 'shop_replaced'), 'already swapped');
  });
});
