import { Client, Connection } from '@temporalio/client';

/** Connects a Temporal client; callers close `client.connection` when done. */
export async function connectClient(address: string, namespace: string, connectTimeoutMs = 5_000): Promise<Client> {
  const connection = await Connection.connect({ address, connectTimeout: connectTimeoutMs });
  return new Client({ connection, namespace });
}
