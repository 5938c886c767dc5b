import { DescribeSecurityGroupsCommand, DescribeSubnetsCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  CreateClusterCommand,
  CreateServiceCommand,
  ECSClient,
  RegisterTaskDefinitionCommand,
  type RegisterTaskDefinitionCommandInput,
} from '@aws-sdk/client-ecs';
import {
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateTargetGroupCommand,
  ElasticLoadBalancingV2Client,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { CreateDBInstanceCommand, CreateDBSubnetGroupCommand, RDSClient } from '@aws-sdk/client-rds';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';

/** The AWS side of the sample service, as created in moto: what runbook.yaml's aws block names. */
export interface MotoShop {
  cluster: string;
  services: { blue: string; green: string };
  targetGroups: { blue: string; green: string };
  listener: string;
  testListener: string;
  /** The listeners' ports: production (HTTP 80) and test (HTTP 8443). */
  ports: { listener: number; testListener: number };
  instance: string;
  subnetGroup: string;
  securityGroup: string;
  /** The default VPC's subnets, where the services' awsvpc tasks run (and the load balancer and database live). */
  subnets: string[];
  endpointParameter: string;
}

const PORTS = { listener: 80, testListener: 8443 };

/** The task definition shape ECS requires with ip target groups: awsvpc on Fargate (the smallest size). */
export const fargateTask = {
  networkMode: 'awsvpc',
  requiresCompatibilities: ['FARGATE'],
  cpu: '256',
  memory: '512',
} as const satisfies Partial<RegisterTaskDefinitionCommandInput>;

/**
 * Creates, through the real SDK clients, what an operator would have set up for the shop service: an ECS
 * cluster with two Fargate services (blue serving, green idle) on one awsvpc task definition (each task its own
 * network interface in the default VPC's subnets, as `ip` target groups need: ECS refuses bridge mode with them),
 * an application load balancer
 * with two target groups, a production listener whose default action forwards 100/0 and a test listener, an
 * RDS PostgreSQL instance with a subnet group, and the SSM parameter the tasks read the database host from.
 */
export async function createMotoShop(endpoint: string, region: string): Promise<MotoShop> {
  const config = { region, endpoint };
  const ec2 = new EC2Client(config);
  const ecs = new ECSClient(config);
  const elb = new ElasticLoadBalancingV2Client(config);
  const rds = new RDSClient(config);
  const ssm = new SSMClient(config);
  try {
    const subnets = (await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? [];
    const vpcId = subnets[0]!.VpcId!;
    const subnetIds = subnets.filter((s) => s.VpcId === vpcId).map((s) => s.SubnetId!);
    const securityGroup = (await ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups![0]!.GroupId!;

    const cluster = 'shop-moto';
    await ecs.send(new CreateClusterCommand({ clusterName: cluster }));
    const taskDefinition = (
      await ecs.send(
        new RegisterTaskDefinitionCommand({
          family: 'shop',
          ...fargateTask,
          containerDefinitions: [
            {
              name: 'app',
              image: '123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v0',
              memory: 256,
              portMappings: [{ containerPort: 8080 }],
              environment: [{ name: 'APP_VERSION', value: 'v0' }],
            },
          ],
        }),
      )
    ).taskDefinition!.taskDefinitionArn!;

    const lb = (
      await elb.send(
        new CreateLoadBalancerCommand({ Name: 'shop-lb', Subnets: subnetIds.slice(0, 2), Type: 'application' }),
      )
    ).LoadBalancers![0]!.LoadBalancerArn!;
    const targetGroup = async (name: string) =>
      (
        await elb.send(
          new CreateTargetGroupCommand({ Name: name, Protocol: 'HTTP', Port: 8080, VpcId: vpcId, TargetType: 'ip' }),
        )
      ).TargetGroups![0]!.TargetGroupArn!;
    const targetGroups = { blue: await targetGroup('shop-blue'), green: await targetGroup('shop-green') };
    // moto runs no tasks, so nothing registers targets: one each, which moto reports healthy.
    for (const arn of Object.values(targetGroups)) {
      await elb.send(new RegisterTargetsCommand({ TargetGroupArn: arn, Targets: [{ Id: '172.31.0.10', Port: 8080 }] }));
    }
    const forward = (weights: { blue: number; green: number }) => [
      {
        Type: 'forward' as const,
        ForwardConfig: {
          TargetGroups: [
            { TargetGroupArn: targetGroups.blue, Weight: weights.blue },
            { TargetGroupArn: targetGroups.green, Weight: weights.green },
          ],
        },
      },
    ];
    const listener = (
      await elb.send(
        new CreateListenerCommand({
          LoadBalancerArn: lb,
          Protocol: 'HTTP',
          Port: PORTS.listener,
          DefaultActions: forward({ blue: 100, green: 0 }),
        }),
      )
    ).Listeners![0]!.ListenerArn!;
    const testListener = (
      await elb.send(
        new CreateListenerCommand({
          LoadBalancerArn: lb,
          Protocol: 'HTTP',
          Port: PORTS.testListener,
          DefaultActions: [{ Type: 'forward', TargetGroupArn: targetGroups.green }],
        }),
      )
    ).Listeners![0]!.ListenerArn!;

    const service = async (name: string, targetGroupArn: string, desiredCount: number) =>
      ecs.send(
        new CreateServiceCommand({
          cluster,
          serviceName: name,
          taskDefinition,
          desiredCount,
          launchType: 'FARGATE',
          networkConfiguration: {
            awsvpcConfiguration: { subnets: subnetIds, securityGroups: [securityGroup], assignPublicIp: 'DISABLED' },
          },
          loadBalancers: [{ targetGroupArn, containerName: 'app', containerPort: 8080 }],
          deploymentConfiguration: { deploymentCircuitBreaker: { enable: true, rollback: true } },
        }),
      );
    await service('shop-blue', targetGroups.blue, 1);
    await service('shop-green', targetGroups.green, 0);

    const subnetGroup = 'shop-db-subnets';
    await rds.send(
      new CreateDBSubnetGroupCommand({
        DBSubnetGroupName: subnetGroup,
        DBSubnetGroupDescription: 'shop',
        SubnetIds: subnetIds,
      }),
    );
    const instance = 'shop-db';
    const created = await rds.send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: instance,
        Engine: 'postgres',
        EngineVersion: '15.8',
        DBInstanceClass: 'db.t4g.micro',
        AllocatedStorage: 20,
        MasterUsername: 'shop',
        MasterUserPassword: 'not-a-real-password',
        DBName: 'shop',
        DBSubnetGroupName: subnetGroup,
      }),
    );
    const endpointParameter = '/shop/moto/db-host';
    await ssm.send(
      new PutParameterCommand({
        Name: endpointParameter,
        Type: 'String',
        Value: created.DBInstance?.Endpoint?.Address ?? `${instance}.aaaaaaaaaa.${region}.rds.amazonaws.com`,
      }),
    );
    return {
      cluster,
      services: { blue: 'shop-blue', green: 'shop-green' },
      targetGroups,
      listener,
      testListener,
      ports: PORTS,
      instance,
      subnetGroup,
      securityGroup,
      subnets: subnetIds,
      endpointParameter,
    };
  } finally {
    for (const c of [ec2, ecs, elb, rds, ssm]) c.destroy();
  }
}
